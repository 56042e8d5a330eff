/**
 * zstd and gzip layers with truncations, bit flips and trailing garbage through the built
 * processor (dist/bin/outrigger-zstd), both as the zstd-compatible pipe (`-dc`) and in
 * containerd's stream-processor mode, judged against what the real `zstd`/`gzip` tools say
 * about the same bytes. Invariants per case: the process ends by itself within the bound, with
 * an exit code (no signal, no stack trace); when the reference tool rejects the input we exit
 * non-zero; when we exit 0 the reference accepted it and our output is exactly its output; a
 * failing stream processor never hands containerd the complete original tar.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinnedBinary } from './support/built-binary.ts';
import { assertFuzz, fuzzTestTimeout } from './support/fuzz.ts';
import { textLike } from './support/zstd-helpers.ts';

const CASE_MS = 15_000;
const MEDIA = { zstd: 'application/vnd.oci.image.layer.v1.tar+zstd', gzip: 'application/vnd.oci.image.layer.v1.tar+gzip' } as const;
type Format = keyof typeof MEDIA;

interface Outcome {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  readonly timedOut: boolean;
}

let dir: string;
let bin: string;
let disposeBin: (() => void) | undefined;
let tar: Buffer;
const streams: Record<string, Buffer> = {};

function run(file: string, args: readonly string[], input: Buffer, env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const fullEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    if (!('STREAM_PROCESSOR_MEDIATYPE' in env)) delete fullEnv.STREAM_PROCESSOR_MEDIATYPE;
    delete fullEnv.NODE_OPTIONS;
    const child = spawn(file, args, { env: fullEnv, cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, CASE_MS - 2_000);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => {}); // a decoder that gives up early closes its stdin: EPIPE is fine
    child.stdin.end(input);
    // 'close' waits for stdout's EOF too (the stream processor lingers it on failure).
    child.on('error', (e) => err.push(Buffer.from(`spawn ${file}: ${e.message}`)));
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString(), timedOut });
    });
  });
}

beforeAll(() => {
  const pinned = pinnedBinary('outrigger-zstd');
  bin = pinned.path;
  disposeBin = pinned.dispose;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fuzz-streams-'));
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(src, 'etc/words'), textLike(40_000, 7));
  fs.writeFileSync(path.join(src, 'noise'), Buffer.from(Array.from({ length: 9_000 }, (_, i) => (i * 2654435761) >>> 24)));
  fs.writeFileSync(path.join(src, 'empty'), '');
  tar = spawnSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '-C', src, '-cf', '-', '.'], { maxBuffer: 1 << 26 }).stdout;
  const tool = (file: string, args: string[], input: Buffer) => spawnSync(file, args, { input, maxBuffer: 1 << 26 }).stdout;
  streams['zstd'] = tool('zstd', ['-q', '-c', '-3'], tar);
  streams['zstd-nocheck'] = tool('zstd', ['-q', '-c', '--no-check', '-3'], tar);
  // Two frames: the reference and we must agree on a stream that ends between frames too.
  const half = Math.floor(tar.length / 2);
  streams['zstd-2frames'] = Buffer.concat([tool('zstd', ['-q', '-c'], tar.subarray(0, half)), tool('zstd', ['-q', '-c'], tar.subarray(half))]);
  streams['gzip'] = tool('gzip', ['-c', '-n'], tar);
  streams['gzip-2members'] = Buffer.concat([tool('gzip', ['-c', '-n'], tar.subarray(0, half)), tool('gzip', ['-c', '-n'], tar.subarray(half))]);
  for (const [k, v] of Object.entries(streams)) if (v.length === 0) throw new Error(`could not make the ${k} stream`);
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  disposeBin?.();
});

interface Mutation {
  readonly flips: readonly (readonly [number, number])[];
  readonly truncateAt: number | undefined;
  readonly garbage: Uint8Array;
}

const mutation: fc.Arbitrary<Mutation> = fc
  .record({
    flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { maxLength: 4 }),
    truncateAt: fc.option(fc.nat(), { nil: undefined }),
    garbage: fc.oneof({ weight: 4, arbitrary: fc.constant(new Uint8Array(0)) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  })
  .filter((m) => m.flips.length > 0 || m.truncateAt !== undefined || m.garbage.length > 0);

function mutate(original: Buffer, m: Mutation): Buffer {
  const b = Buffer.from(original);
  // Bias positions to the start and end, where headers, checksums and trailers live.
  for (const [pos, bit] of m.flips) {
    const where = pos % 3 === 0 ? pos % Math.min(32, b.length) : pos % 3 === 1 ? b.length - 1 - (pos % Math.min(32, b.length)) : pos % b.length;
    b[where]! ^= 1 << bit;
  }
  const cut = m.truncateAt === undefined ? b : b.subarray(0, m.truncateAt % b.length);
  return Buffer.concat([cut, m.garbage]);
}

/** The reference tool's verdict: ok (exit 0), warning (gzip's exit 2, e.g. trailing garbage ignored) or rejected. */
async function reference(format: Format, input: Buffer): Promise<{ verdict: 'ok' | 'warning' | 'rejected'; stdout: Buffer }> {
  const r = format === 'zstd' ? await run('zstd', ['-q', '-dc'], input) : await run('gzip', ['-dc'], input);
  const verdict = r.status === 0 ? 'ok' : format === 'gzip' && r.status === 2 ? 'warning' : 'rejected';
  return { verdict, stdout: r.stdout };
}

function expectOrderlyExit(o: Outcome, what: string): void {
  expect(o.timedOut, `${what}: did not finish within ${CASE_MS - 2_000} ms`).toBe(false);
  expect(o.signal, `${what}: killed by a signal; stderr: ${o.stderr}`).toBeNull();
  expect(o.stderr, `${what}: stack trace on stderr`).not.toMatch(/\n\s+at .+:\d+:\d+/);
}

async function checkCase(kind: string, m: Mutation): Promise<void> {
  const format: Format = kind.startsWith('zstd') ? 'zstd' : 'gzip';
  const input = mutate(streams[kind]!, m);
  const ref = await reference(format, input);
  const pipe = await run(bin, ['-dc'], input);
  const proc = await run(bin, [], input, { STREAM_PROCESSOR_MEDIATYPE: MEDIA[format] });
  expectOrderlyExit(pipe, 'outrigger-zstd -dc');
  expectOrderlyExit(proc, 'stream processor');
  const ctx = `${kind}, ${input.length} bytes, reference ${ref.verdict}`;
  if (ref.verdict === 'rejected') {
    expect(pipe.status, `-dc exited 0 on input ${format} rejects (${ctx})`).not.toBe(0);
    expect(proc.status, `stream processor exited 0 on input ${format} rejects (${ctx})`).not.toBe(0);
  }
  for (const [name, o] of [['-dc', pipe], ['stream processor', proc]] as const) {
    if (o.status === 0) {
      expect(ref.verdict, `${name} exit 0 where ${format} said ${ref.verdict} (${ctx})`).not.toBe('rejected');
      expect(o.stdout.equals(ref.stdout), `${name} exit 0 but output differs from ${format} -dc (${ctx})`).toBe(true);
    } else {
      expect(o.stderr.trim().length, `${name} failed without saying why (${ctx})`).toBeGreaterThan(0);
    }
  }
  if (proc.status !== 0) expect(proc.stdout.equals(tar), `failed stream processor still wrote the whole tar (${ctx})`).toBe(false);
}

describe('corrupted zstd/gzip streams through the built processor', () => {
  for (const kind of ['zstd', 'zstd-nocheck', 'zstd-2frames', 'gzip', 'gzip-2members']) {
    it(`${kind}: truncations, bit flips, trailing garbage`, async () => {
      await assertFuzz('zstd/gzip', `${kind} streams (truncate, flip, append)`, [mutation], (m) => checkCase(kind, m), { runs: 10, timeoutMs: CASE_MS });
    }, fuzzTestTimeout(10, CASE_MS));
  }
});
