/**
 * eStargz TOC JSON and footers fuzzed through the built processor (dist/bin/outrigger-estargz):
 * `unpack` in stream-processor mode, `verify` and `ls`. The blob is one our builder made from a
 * small tar; each case swaps in a mutated TOC (values replaced by arbitrary JSON, keys dropped,
 * entries added or removed, text bytes flipped, the document replaced) or a mutated footer.
 * Invariants per case: every run ends by itself within the bound with an exit code and a
 * message instead of a stack trace; with the original TOC digest pinned, unpack exits 0 only
 * when the TOC bytes are unchanged; unpack and verify agree; whenever unpack exits 0 its output
 * is exactly `gzip -dc` of the blob; and a blob `gzip` itself rejects is never accepted.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinnedBinary } from './support/built-binary.ts';
import { FOOTER_SIZE, tocJsonOf, withToc } from './support/estargz-blob.ts';
import { assertFuzz, fuzzTestTimeout } from './support/fuzz.ts';
import { textLike } from './support/zstd-helpers.ts';

const CASE_MS = 30_000;
const GZIP_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

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
let blob: Buffer;
let toc: Buffer;
let tocDigest: string;
let caseNo = 0;

function run(file: string, args: readonly string[], input: Buffer | undefined, env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const fullEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    if (!('STREAM_PROCESSOR_MEDIATYPE' in env)) delete fullEnv.STREAM_PROCESSOR_MEDIATYPE;
    delete fullEnv.NODE_OPTIONS;
    delete fullEnv.OUTRIGGER_ESTARGZ_TOC_DIGEST;
    const child = spawn(file, args, { env: fullEnv, cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, CASE_MS / 3);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? Buffer.alloc(0));
    child.on('error', (e) => err.push(Buffer.from(`spawn ${file}: ${e.message}`)));
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString(), timedOut });
    });
  });
}

beforeAll(() => {
  const pinned = pinnedBinary('outrigger-estargz');
  bin = pinned.path;
  disposeBin = pinned.dispose;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fuzz-estargz-'));
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'etc/deep'), { recursive: true });
  fs.writeFileSync(path.join(src, 'etc/words'), textLike(20_000, 3));
  fs.writeFileSync(path.join(src, 'etc/deep/small'), 'small\n');
  fs.writeFileSync(path.join(src, 'empty'), '');
  fs.symlinkSync('etc/words', path.join(src, 'link'));
  const tarFile = path.join(dir, 'in.tar');
  spawnSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '-C', src, '-cf', tarFile, '.']);
  const report = path.join(dir, 'report.json');
  // 4 KiB chunks: the words file becomes a reg entry plus chunk entries, so mutations reach those too.
  const built = spawnSync(bin, ['build', tarFile, '-o', path.join(dir, 'blob'), '--report', report, '--chunk-size', '4096', '--no-progress']);
  if (built.status !== 0) throw new Error(`estargz build failed: ${built.stderr.toString()}`);
  blob = fs.readFileSync(path.join(dir, 'blob'));
  tocDigest = (JSON.parse(fs.readFileSync(report, 'utf8')) as { tocDigest: string }).tocDigest;
  toc = tocJsonOf(blob);
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  disposeBin?.();
});

function expectOrderly(o: Outcome, what: string): void {
  expect(o.timedOut, `${what}: did not finish within ${CASE_MS / 3} ms`).toBe(false);
  expect(o.signal, `${what}: killed by ${o.signal}; stderr: ${o.stderr}`).toBeNull();
  expect(o.stderr, `${what}: stack trace`).not.toMatch(/\n\s+at .+:\d+:\d+/);
  if (o.status !== 0) expect(o.stderr.trim().length, `${what}: failed without a message`).toBeGreaterThan(0);
}

/** Runs unpack (free and pinned), verify and ls on `candidate`; checks the shared invariants. */
async function judge(candidate: Buffer, unchangedToc: boolean): Promise<void> {
  const file = path.join(dir, `case-${caseNo++ % 4}.blob`);
  fs.writeFileSync(file, candidate);
  const gunzip = await run('gzip', ['-dc'], candidate);
  const unpack = await run(bin, [], candidate, { STREAM_PROCESSOR_MEDIATYPE: GZIP_LAYER });
  const pinned = await run(bin, ['unpack', '--toc-digest', tocDigest], candidate, { STREAM_PROCESSOR_MEDIATYPE: GZIP_LAYER });
  const verify = await run(bin, ['verify', file], undefined);
  const ls = await run(bin, ['ls', file], undefined);
  for (const [what, o] of [['unpack', unpack], ['unpack --toc-digest', pinned], ['verify', verify], ['ls', ls]] as const) expectOrderly(o, what);
  if (gunzip.status === 1) expect(unpack.status, 'unpack accepted a blob gzip rejects').not.toBe(0);
  if (unpack.status === 0) expect(unpack.stdout.equals(gunzip.stdout), 'unpack exit 0 but its output is not gzip -dc of the blob').toBe(true);
  if (pinned.status === 0) expect(unchangedToc, 'unpack with the original TOC digest accepted a different TOC').toBe(true);
  expect(verify.status === 0, `verify (${verify.status}: ${verify.stderr.trim()}) and unpack (${unpack.status}: ${unpack.stderr.trim()}) disagree`).toBe(unpack.status === 0);
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const tocMutation = fc.oneof(
  // one field of one entry set to any JSON value
  fc.record({ kind: fc.constant('set' as const), entry: fc.nat(), key: fc.constantFrom('name', 'type', 'size', 'offset', 'innerOffset', 'digest', 'chunkDigest', 'chunkOffset', 'chunkSize', 'linkName', 'mode', 'xattrs', 'NumLink', 'NAME', 'Size'), value: fc.jsonValue({ maxDepth: 2 }) }),
  fc.record({ kind: fc.constant('drop-key' as const), entry: fc.nat(), key: fc.constantFrom('name', 'type', 'size', 'offset', 'digest', 'chunkDigest', 'chunkOffset', 'chunkSize') }),
  fc.record({ kind: fc.constant('drop-entry' as const), entry: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate-entry' as const), entry: fc.nat() }),
  fc.record({ kind: fc.constant('swap-entries' as const), entry: fc.nat(), other: fc.nat() }),
  fc.record({ kind: fc.constant('top' as const), key: fc.constantFrom('version', 'entries'), value: fc.jsonValue({ maxDepth: 2 }) }),
  fc.record({ kind: fc.constant('flip' as const), flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 3 }) }),
  fc.record({ kind: fc.constant('replace' as const), value: fc.jsonValue({ maxDepth: 3 }) }),
);

type TocMutation = typeof tocMutation extends fc.Arbitrary<infer T> ? T : never;

function mutateToc(original: Buffer, m: TocMutation): Buffer {
  if (m.kind === 'flip') {
    const b = Buffer.from(original);
    for (const [pos, bit] of m.flips) b[pos % b.length]! ^= 1 << bit;
    return b;
  }
  if (m.kind === 'replace') return Buffer.from(JSON.stringify(m.value));
  const doc = JSON.parse(original.toString('utf8')) as { version: Json; entries: Record<string, Json>[] };
  const entries = doc.entries;
  const i = 'entry' in m ? m.entry % entries.length : 0;
  switch (m.kind) {
    case 'set':
      entries[i]![m.key] = m.value as Json;
      break;
    case 'drop-key':
      delete entries[i]![m.key];
      break;
    case 'drop-entry':
      entries.splice(i, 1);
      break;
    case 'duplicate-entry':
      entries.splice(i, 0, structuredClone(entries[i]!));
      break;
    case 'swap-entries': {
      const j = m.other % entries.length;
      [entries[i], entries[j]] = [entries[j]!, entries[i]!];
      break;
    }
    case 'top':
      (doc as Record<string, Json>)[m.key] = m.value as Json;
      break;
  }
  return Buffer.from(JSON.stringify(doc, null, '\t'));
}

const footerMutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), flips: fc.array(fc.tuple(fc.integer({ min: 0, max: FOOTER_SIZE - 1 }), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 3 }) }),
  // a well-formed footer pointing anywhere: inside a member, past the end, at 0, huge
  fc.record({ kind: fc.constant('offset' as const), offset: fc.oneof(fc.nat(), fc.constant(0), fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn })) }),
  fc.record({ kind: fc.constant('hex' as const), text: fc.string({ minLength: 16, maxLength: 16 }) }),
);

function mutateFooter(original: Buffer, m: typeof footerMutation extends fc.Arbitrary<infer T> ? T : never): Buffer {
  const b = Buffer.from(original);
  const f = b.length - FOOTER_SIZE;
  if (m.kind === 'flip') {
    for (const [pos, bit] of m.flips) b[f + pos]! ^= 1 << bit;
  } else {
    const hex = m.kind === 'hex' ? m.text : (typeof m.offset === 'bigint' ? m.offset : BigInt(m.offset % (b.length + 100))).toString(16).padStart(16, '0');
    const bytes = Buffer.from(hex, 'latin1').subarray(0, 16);
    b.fill(0x30, f + 16, f + 32);
    bytes.copy(b, f + 16);
  }
  return b;
}

describe('eStargz TOC and footer fuzzing through the built processor', () => {
  it('the unmodified blob passes (the harness itself is sound)', async () => {
    const rebuilt = withToc(blob, toc);
    await judge(rebuilt, true);
    const ok = await run(bin, ['unpack', '--toc-digest', tocDigest], rebuilt, { STREAM_PROCESSOR_MEDIATYPE: GZIP_LAYER });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
  });

  it('mutated TOC JSON', async () => {
    await assertFuzz('estargz', 'TOC JSON (set/drop/duplicate/swap/flip/replace)', [tocMutation], async (m) => {
      const json = mutateToc(toc, m);
      await judge(withToc(blob, json), json.equals(toc));
    }, { runs: 16, timeoutMs: CASE_MS });
  }, fuzzTestTimeout(16, CASE_MS));

  it('mutated footers', async () => {
    await assertFuzz('estargz', 'footer (bit flips, offsets, hex text)', [footerMutation], async (m) => {
      const candidate = mutateFooter(blob, m);
      await judge(candidate, candidate.equals(blob));
    }, { runs: 12, timeoutMs: CASE_MS });
  }, fuzzTestTimeout(12, CASE_MS));
});
