/** In-process drivers for processors/zstd and the real zstd/gzip CLIs, shared by the zstd tests. */
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { decodeStream, DecodeError, type DecodeOptions, type DecodeResult } from '../../processors/zstd/decode.ts';
import { compressStream, type CompressOptions } from '../../processors/zstd/compress.ts';

export interface DecodeOutcome {
  readonly output: Buffer;
  readonly result?: DecodeResult;
  readonly error?: DecodeError;
}

/** A sink that keeps what it got, to compare with what should have come out. */
class Collect extends Writable {
  readonly parts: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    // Copy: the decoder reuses its buffers once a write has called back.
    this.parts.push(Buffer.from(chunk));
    done();
  }
}

function* pieces(data: Buffer, chunk: number): Generator<Buffer> {
  for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, i + chunk);
}

export async function decodeBuffer(data: Buffer, options: Partial<DecodeOptions> & { inputChunk?: number } = {}): Promise<DecodeOutcome> {
  const sink = new Collect();
  async function* source(): AsyncGenerator<Buffer> {
    yield* pieces(data, options.inputChunk ?? 65536);
  }
  try {
    const result = await decodeStream(source(), sink, {
      maxWindowSize: 2 ** 27,
      chunkSize: 64 * 1024,
      formats: ['zstd', 'gzip'],
      passThrough: false,
      end: true,
      ...options,
    });
    return { output: Buffer.concat(sink.parts), result };
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    return { output: Buffer.concat(sink.parts), error: err };
  }
}

export async function compressBuffer(data: Buffer, options: Partial<CompressOptions> = {}): Promise<Buffer> {
  const sink = new Collect();
  async function* source(): AsyncGenerator<Buffer> {
    yield* pieces(data, 65536);
  }
  await compressStream(source(), sink, { level: 3, checksum: true, chunkSize: 64 * 1024, end: true, ...options });
  return Buffer.concat(sink.parts);
}

/** Runs a real CLI (zstd, gzip) as a filter. */
export function tool(file: string, args: readonly string[], input: Buffer): Buffer {
  return execFileSync(file, args, { input, maxBuffer: 1 << 30, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** A zstd skippable frame (magic 0x184D2A5n) carrying `body`. */
export function skippableFrame(body: Buffer, nibble = 0): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(0x184d2a50 + nibble, 0);
  header.writeUInt32LE(body.length, 4);
  return Buffer.concat([header, body]);
}

/** Compressible but not trivial: words from a small vocabulary, seeded. */
export function textLike(bytes: number, seed = 1): Buffer {
  const words = ['layer', 'tar', 'zstd', 'frame', 'block', 'window', 'containerd', 'snapshot', 'diff', 'digest', '\n'];
  let x = seed >>> 0 || 1;
  const out: string[] = [];
  let n = 0;
  while (n < bytes) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const w = words[(x >>> 0) % words.length]!;
    out.push(w, ' ');
    n += w.length + 1;
  }
  return Buffer.from(out.join('').slice(0, bytes));
}
