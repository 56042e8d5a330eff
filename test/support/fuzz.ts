/**
 * Shared knobs of the fuzz tests (test/fuzz-*.test.ts). CI runs each property a few dozen times
 * with a fixed seed; `npm run fuzz` sets OUTRIGGER_FUZZ_SCALE (a multiplier of those counts)
 * and OUTRIGGER_RELIABILITY_LOG (a JSON-lines file) so the same properties run long and their
 * counts end up in docs/reliability.md. OUTRIGGER_FUZZ_SEED replays another seed; a failing case prints
 * its seed and path as fast-check always does.
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { expect } from 'vitest';

export const FUZZ_SEED = Number(process.env.OUTRIGGER_FUZZ_SEED ?? 20261122);

/**
 * Cases for one property: `ci` by default; OUTRIGGER_FUZZ_SCALE multiplies it (what `npm run
 * fuzz` sets, so cheap and costly properties grow alike); OUTRIGGER_FUZZ_RUNS sets it outright.
 * Never fewer than `ci`.
 */
export function fuzzRuns(ci: number): number {
  const runs = positiveEnv('OUTRIGGER_FUZZ_RUNS');
  if (runs !== undefined) return Math.max(ci, runs);
  const scale = positiveEnv('OUTRIGGER_FUZZ_SCALE');
  return scale === undefined ? ci : Math.max(ci, Math.round(ci * scale));
}

function positiveEnv(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${raw} is not a positive number`);
  return n;
}

/** A vitest timeout for a test running `ciRuns` (scaled like fuzzRuns) cases of at most `caseMs` each. */
export function fuzzTestTimeout(ciRuns: number, caseMs: number): number {
  return fuzzRuns(ciRuns) * caseMs + 60_000;
}

/** One line of the reliability log; scripts/reliability-table.ts turns these into the table. */
export interface ReliabilityRecord {
  readonly kind: 'fuzz' | 'soak' | 'fault';
  readonly suite: string;
  readonly property: string;
  readonly tried: number;
  /** Cases after which every invariant held. */
  readonly survived: number;
  /** Cases that broke an invariant (crash, hang, exit 0 on corrupt data, server gone). Must be 0. */
  readonly lost: number;
  readonly seed?: number;
  /** The test file, relative to the repo (so a partial `npm run fuzz --only` replaces only its lines). */
  readonly file?: string;
  readonly at: string;
}

export function recordReliability(record: Omit<ReliabilityRecord, 'at'>): void {
  const file = process.env.OUTRIGGER_RELIABILITY_LOG;
  if (!file) return;
  fs.appendFileSync(file, `${JSON.stringify({ ...record, at: new Date().toISOString() })}\n`);
}

/**
 * fc.assert over an async property with the shared seed and run count, counting the cases
 * tried and lost (a lost case is one whose predicate threw or returned false) for the log.
 */
export async function assertFuzz<Ts extends [unknown, ...unknown[]]>(
  suite: string,
  property: string,
  arbitraries: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  predicate: (...args: Ts) => Promise<void>,
  opts: { runs: number; timeoutMs?: number },
): Promise<void> {
  let tried = 0;
  let lost = 0;
  const counted = async (...args: Ts): Promise<void> => {
    tried += 1;
    try {
      await predicate(...args);
    } catch (err) {
      lost += 1;
      throw err;
    }
  };
  const prop = fc.asyncProperty(...arbitraries, counted);
  const runs = fuzzRuns(opts.runs);
  try {
    // endOnFailure: a long run stops at the first broken case instead of shrinking for an hour;
    // the seed and path in the failure message replay it.
    await fc.assert(prop, { seed: FUZZ_SEED, numRuns: runs, endOnFailure: true, ...(opts.timeoutMs !== undefined ? { timeout: opts.timeoutMs } : {}) });
  } finally {
    // Shrinking reruns lost cases; count the distinct counterexample once.
    const testPath = expect.getState().testPath;
    const file = testPath ? path.relative(path.resolve(import.meta.dirname, '../..'), testPath) : undefined;
    recordReliability({ kind: 'fuzz', suite, property, tried, survived: tried - Math.min(lost, 1), lost: Math.min(lost, 1), seed: FUZZ_SEED, ...(file ? { file } : {}) });
  }
}
