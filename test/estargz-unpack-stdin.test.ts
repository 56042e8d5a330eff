/**
 * `outrigger-estargz unpack` with stdin as each kind of file it meets: a pipe (containerd's and a
 * shell's: read(2) straight into the inflate worker's input slots, io.ts Input.readInto), a
 * regular file (the same path), and a socket (what Node hands a child: the chunked path). The
 * output must be the same bytes, and a short or damaged input the same failure, whichever path
 * reads it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededContent, tarOfFiles } from './support/estargz-blob.ts';
import { pinnedBinary } from './support/built-binary.ts';
import { buildEstargzBuffer } from '../processors/estargz/build-buffer.ts';

let dir: string;
let bin: { path: string; dispose: () => void };

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'estargz-unpack-stdin-'));
  bin = pinnedBinary('outrigger-estargz');
});

afterAll(() => {
  bin.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

type Stdin = 'pipe' | 'file' | 'socket';

/** Runs the unpack on `input` given as `stdin`: exit status, stdout, stderr. */
function unpack(input: Buffer, stdin: Stdin): { status: number | null; stdout: Buffer; stderr: string } {
  const file = path.join(dir, 'input');
  fs.writeFileSync(file, input);
  const options = { maxBuffer: 1 << 28, timeout: 60_000 };
  const r =
    stdin === 'socket'
      ? spawnSync(bin.path, ['unpack'], { ...options, input })
      : stdin === 'file'
        ? spawnSync(bin.path, ['unpack'], { ...options, stdio: [fs.openSync(file, 'r'), 'pipe', 'pipe'] })
        : spawnSync('sh', ['-c', 'cat "$1" | "$2" unpack', 'sh', file, bin.path], options);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

const STDINS: readonly Stdin[] = ['pipe', 'file', 'socket'];

/** Bytes that do not compress (sha256 in counter mode), the same for a seed: a layer of megabytes from a small tar. */
function noise(size: number, seed: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; i * 32 < size; i++) blocks.push(createHash('sha256').update(`${seed}:${i}`).digest());
  return Buffer.concat(blocks).subarray(0, size);
}

describe('estargz unpack reads stdin the same whatever it is', () => {
  it('eStargz (several MiB of input slots), plain gzip, zstd:chunked and plain zstd layers: the same bytes from a pipe, a file and a socket', async () => {
    const files: Array<[string, Buffer]> = Array.from({ length: 12 }, (_, i) => [`d/f${i}`, i % 3 === 0 ? seededContent(300_000, i) : noise(300_000 + i * 7_000, i)]);
    const tar = await tarOfFiles(files, []);
    const { blob } = await buildEstargzBuffer(tar, { chunkSize: 256 * 1024, level: 1 });
    const { blob: chunked } = await buildEstargzBuffer(tar, { compression: 'zstdchunked' });
    expect(blob.length).toBeGreaterThan(2 << 20);
    expect(chunked.readUInt32LE(0)).toBe(0xfd2fb528);
    const layers: Array<[string, Buffer, Buffer]> = [
      ['estargz', blob, zlib.gunzipSync(blob)],
      ['gzip', zlib.gzipSync(tar), tar],
      // The zstd CLI skips zstd:chunked's skippable frames, as containerd's decompressor does.
      ['zstd:chunked', chunked, spawnSync('zstd', ['-dc'], { input: chunked, maxBuffer: 1 << 28 }).stdout],
      ['zstd', zlib.zstdCompressSync(tar), tar],
    ];
    for (const [kind, layer, expected] of layers) {
      for (const stdin of STDINS) {
        const r = unpack(layer, stdin);
        expect(r.stderr, `${kind} from a ${stdin}`).toBe('');
        expect(r.status, `${kind} from a ${stdin}`).toBe(0);
        expect(r.stdout.equals(expected), `${kind} from a ${stdin}`).toBe(true);
      }
    }
  }, 120_000);

  it('an input shorter than any magic, and a layer cut in the middle, fail the same way from a pipe, a file and a socket', async () => {
    const tar = await tarOfFiles([['d/a', seededContent(200_000, 1)]], []);
    const { blob } = await buildEstargzBuffer(tar, { chunkSize: 64 * 1024 });
    for (const input of [Buffer.alloc(0), Buffer.from([0x1f]), blob.subarray(0, 3), blob.subarray(0, Math.floor(blob.length / 2))]) {
      const outcomes = STDINS.map((stdin) => unpack(input, stdin));
      for (const [i, r] of outcomes.entries()) {
        expect(r.status, `${input.length} bytes from a ${STDINS[i]}`).toBe(1);
        expect(r.stderr).toMatch(/^outrigger: estargz unpack: .*; the tar output was cut short\n$/);
      }
      expect(new Set(outcomes.map((r) => r.stderr)).size, `${input.length} bytes: ${outcomes.map((r) => r.stderr).join(' | ')}`).toBe(1);
      expect(new Set(outcomes.map((r) => r.stdout.toString('hex'))).size).toBe(1);
    }
  }, 60_000);
});
