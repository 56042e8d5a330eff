/**
 * The rotating writer behind file://?maxSize= and outrigger-log, fed the way the shim feeds it
 * (two streams, arbitrary pipe chunking, per-stream line assembly in OutputFile). Properties:
 * read back oldest-first, the files hold every line of each stream exactly once and in
 * order; no file exceeds maxSize; a line that fits in a file is never cut across two.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LineHolder } from '../src/stdio/line-holder.ts';
import { OutputFile } from '../src/stdio/output-file.ts';
import type { OutputStream } from '../src/stdio/output-file.ts';
import { RotatingFile, rotatedFilesOldestFirst } from '../src/stdio/rotating-file.ts';
import { silentStdioLog } from '../src/stdio/stdio-log.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rotating-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Cuts `data` at the given (sorted, deduplicated) offsets. */
function chunks(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, data.length]) {
    if (p > prev) out.push(data.subarray(prev, p));
    prev = Math.max(prev, p);
  }
  return out;
}

/** Lines that say which stream and which position they are: `o3:xyz\n`. */
function tagged(lines: [OutputStream, string][]): { stream: OutputStream; bytes: Buffer }[] {
  const count = { stdout: 0, stderr: 0 };
  return lines.map(([stream, body]) => ({ stream, bytes: Buffer.from(`${stream === 'stdout' ? 'o' : 'e'}${count[stream]++}:${body}\n`) }));
}

/** Feeds each stream's bytes in arbitrary chunks, the two streams alternating chunk by chunk. */
function feed(out: OutputFile, lines: { stream: OutputStream; bytes: Buffer }[], cutSeed: number[]): void {
  const pending: Record<OutputStream, Buffer[]> = { stdout: [], stderr: [] };
  for (const s of ['stdout', 'stderr'] as const) {
    const seed = s === 'stdout' ? cutSeed : cutSeed.map((c) => c * 7 + 3);
    pending[s] = chunks(Buffer.concat(lines.filter((l) => l.stream === s).map((l) => l.bytes)), seed);
  }
  while (pending.stdout.length + pending.stderr.length > 0) {
    for (const s of ['stdout', 'stderr'] as const) {
      const c = pending[s].shift();
      if (c) out.write(s, c);
    }
  }
  out.endStream('stdout');
  out.endStream('stderr');
  out.close();
}

const body = fc.string({ maxLength: 120, unit: fc.constantFrom('a', 'b', 'x', ' ', 'é') });
const streamLines = fc.array(fc.tuple(fc.constantFrom<OutputStream>('stdout', 'stderr'), body), { minLength: 1, maxLength: 60 });

describe('RotatingFile + OutputFile', () => {
  it('every line of both streams exactly once, in order per stream, never split, no file over maxSize', () => {
    let round = 0;
    fc.assert(
      fc.property(streamLines, fc.integer({ min: 0, max: 300 }), fc.array(fc.nat(), { maxLength: 30 }), (raw, slack, cutSeed) => {
        const lines = tagged(raw);
        const maxSize = Math.max(...lines.map((l) => l.bytes.length)) + slack;
        const file = path.join(dir, `r${round++}`, 'c.log');
        feed(OutputFile.open(file, { maxSize, maxFiles: 1000 }, silentStdioLog, {}), lines, cutSeed);

        const contents = rotatedFilesOldestFirst(file).map((f) => fs.readFileSync(f));
        for (const c of contents) {
          expect(c.length).toBeLessThanOrEqual(maxSize);
          expect(c.at(-1)).toBe(0x0a); // every file ends at a line end: no line is cut
        }
        const written = Buffer.concat(contents).toString('utf8').split('\n').slice(0, -1).map((l) => `${l}\n`);
        expect(written).toHaveLength(lines.length);
        for (const s of ['stdout', 'stderr'] as const) {
          const want = lines.filter((l) => l.stream === s).map((l) => l.bytes.toString('utf8'));
          const tag = s === 'stdout' ? 'o' : 'e';
          expect(written.filter((l) => l.startsWith(tag))).toEqual(want);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('lines longer than maxSize are cut at maxSize: no byte lost, no file over maxSize', () => {
    let round = 0;
    fc.assert(
      fc.property(streamLines, fc.integer({ min: 1, max: 40 }), fc.array(fc.nat(), { maxLength: 30 }), (raw, maxSize, cutSeed) => {
        const lines = tagged(raw);
        const file = path.join(dir, `l${round++}`, 'c.log');
        feed(OutputFile.open(file, { maxSize, maxFiles: 100_000 }, silentStdioLog, {}), lines, cutSeed);
        const contents = rotatedFilesOldestFirst(file).map((f) => fs.readFileSync(f));
        for (const c of contents) expect(c.length).toBeLessThanOrEqual(maxSize);
        expect(Buffer.concat(contents).length).toBe(lines.reduce((n, l) => n + l.bytes.length, 0));
        // One stream alone comes out byte for byte.
        if (lines.every((l) => l.stream === 'stdout')) expect(Buffer.concat(contents)).toEqual(Buffer.concat(lines.map((l) => l.bytes)));
      }),
      { numRuns: 100 },
    );
  });

  it('keeps maxFiles files, dropping the oldest; names them PATH, PATH.1 … with Go file modes', () => {
    const file = path.join(dir, 'deep', 'er', 'c.log');
    const w = RotatingFile.open(file, { maxSize: 10, maxFiles: 3 });
    for (let i = 0; i < 10; i++) w.write(Buffer.from(`line${i}\n`)); // 6 bytes each: one per file after the first
    w.close();
    expect(rotatedFilesOldestFirst(file).map((f) => path.basename(f))).toEqual(['c.log.2', 'c.log.1', 'c.log']);
    expect(rotatedFilesOldestFirst(file).map((f) => fs.readFileSync(f, 'utf8'))).toEqual(['line7\n', 'line8\n', 'line9\n']);
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    expect(fs.statSync(path.join(dir, 'deep')).mode & 0o777).toBe(0o755);
    expect(w.rotations).toBe(9);
  });

  it('without a policy it only appends, as the Go shim does, to a file that already exists', () => {
    const file = path.join(dir, 'c.log');
    fs.writeFileSync(file, 'before\n');
    const w = RotatingFile.open(file);
    for (let i = 0; i < 1000; i++) w.write(Buffer.from('0123456789'));
    w.close();
    expect(fs.readFileSync(file, 'utf8')).toBe(`before\n${'0123456789'.repeat(1000)}`);
    expect(rotatedFilesOldestFirst(file)).toEqual([file]);
  });

  it('maxFiles=1 starts the file over', () => {
    const file = path.join(dir, 'c.log');
    const w = RotatingFile.open(file, { maxSize: 8, maxFiles: 1 });
    w.write(Buffer.from('aaaa\nbbbb\ncccc\n'));
    w.close();
    expect(fs.readFileSync(file, 'utf8')).toBe('cccc\n');
    expect(rotatedFilesOldestFirst(file)).toEqual([file]);
  });
});

describe('LineHolder', () => {
  it('passes on whole lines, holds the tail, and gives up holding at the limit', () => {
    const h = new LineHolder(8);
    expect(h.push(Buffer.from('ab'))).toBeUndefined();
    expect(h.push(Buffer.from('c\nde'))?.toString()).toBe('abc\n');
    expect(h.heldBytes).toBe(2);
    expect(h.push(Buffer.from('fghijk'))?.toString()).toBe('defghijk');
    expect(h.push(Buffer.from('x\ny'))?.toString()).toBe('x\n');
    expect(h.flush()?.toString()).toBe('y');
    expect(h.flush()).toBeUndefined();
  });
});
