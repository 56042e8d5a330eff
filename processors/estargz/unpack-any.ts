/**
 * One entry point for every layer the eStargz unpack accepts, told apart by magic bytes (as
 * containerd's own decompressor does): gzip (eStargz, legacy stargz, plain) through unpack.ts,
 * zstd (zstd:chunked of either producer, plain) through outrigger-zstd's decoder with the
 * zstd:chunked verifier watching. Either way `out` receives exactly the decompressed layer, cut
 * short on failure, and is ended on success.
 */
import type { Writable } from 'node:stream';
import { decodeStream, DecodeError } from '../zstd/decode.ts';
import { DEFAULT_WINDOW_LOG_MAX } from '../zstd/options.ts';
import { ZSTD_MAGIC } from '../zstd/zstd-frame-scanner.ts';
import { UnpackError, unpackLayer, type UnpackResult } from './unpack.ts';
import { ZstdChunkedVerifier } from './zstd-chunked-verify.ts';

export interface AnyLayerOptions {
  tocDigest?: string;
  /** Output buffer size of the zstd path. */
  chunkSize: number;
  /**
   * The input read straight into the caller's buffers (io.ts Input.readInto), when the source
   * offers it: then `source` must not have started, and is used only for the rest of a zstd
   * layer.
   */
  readInto?: (buffer: Buffer) => Promise<number>;
}

/** Held back at most while waiting for a tar entry to complete when a zstd layer fails (as outrigger-zstd). */
const TAR_HOLD_BYTES = 4 * 1024 * 1024;

/**
 * The first bytes of `source` (at least 4 unless the input is shorter; empty for no input) and
 * an iterable of the whole input, those bytes included. A producer may reuse a chunk's memory
 * once the next is asked for, so a head gathered from several chunks is copied.
 */
async function peek(source: AsyncIterable<Buffer>): Promise<{ first: Buffer; all: AsyncIterable<Buffer> }> {
  const iterator = source[Symbol.asyncIterator]();
  const parts: Buffer[] = [];
  let bytes = 0;
  let ended = false;
  while (bytes < 4) {
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      break;
    }
    parts.push(next.value);
    bytes += next.value.length;
    if (bytes < 4) parts[parts.length - 1] = Buffer.from(next.value);
  }
  const first = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  async function* all(): AsyncGenerator<Buffer> {
    try {
      if (first.length > 0) yield first;
      while (!ended) {
        const next = await iterator.next();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      await iterator.return?.();
    }
  }
  return { first, all: all() };
}

function isZstd(first: Buffer): boolean {
  return first.length >= 4 && first.readUInt32LE(0) === ZSTD_MAGIC;
}

/**
 * A tar+zstd layer (zstd:chunked or plain): outrigger-zstd's decoder with the zstd:chunked
 * verifier watching; results in the shape of the gzip path's.
 */
async function unpackZstd(chunks: AsyncIterable<Buffer>, out: Writable, tocDigest: string | undefined, chunkSize: number): Promise<UnpackResult> {
  const verifier = new ZstdChunkedVerifier({ tocDigest });
  try {
    const decoded = await decodeStream(chunks, out, {
      maxWindowSize: 2 ** DEFAULT_WINDOW_LOG_MAX,
      chunkSize,
      formats: ['zstd'],
      tarHoldBytes: TAR_HOLD_BYTES,
      passThrough: false,
      end: true,
      observer: verifier,
    });
    const v = verifier.result;
    return {
      format: v.format,
      inputBytes: decoded.inputBytes,
      outputBytes: decoded.outputBytes,
      members: decoded.frames?.zstd ?? 0,
      ...(v.tocDigest !== undefined ? { tocDigest: v.tocDigest } : {}),
      ...(v.verified !== undefined ? { verified: v.verified } : {}),
    };
  } catch (err) {
    if (err instanceof DecodeError) throw new UnpackError(err.message, err.offset, { cause: err });
    throw err;
  } finally {
    verifier.close();
  }
}

/** One write; the promise settles when `chunk`'s memory may be reused. */
function writeTo(out: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => out.write(chunk, (err) => (err ? reject(err) : resolve())));
}

/** Decodes and verifies a gzip or zstd layer from `source` into `out`; throws UnpackError. */
export async function unpackAnyLayer(source: AsyncIterable<Buffer>, out: Writable, opts: AnyLayerOptions): Promise<UnpackResult> {
  const write = (chunk: Buffer): Promise<void> => writeTo(out, chunk);
  if (opts.readInto) {
    // The magic bytes on their own; the rest of a gzip layer goes straight into the inflate
    // worker's input slots, the rest of a zstd layer through `source`.
    const head = Buffer.alloc(4);
    const first = head.subarray(0, await opts.readInto(head));
    if (isZstd(first)) return unpackZstd(prepended(first, source), out, opts.tocDigest, opts.chunkSize);
    // Fewer than 4 bytes: that was all of the input.
    const result = await unpackLayer(prepended(first), write, { tocDigest: opts.tocDigest, ...(first.length === 4 ? { readInto: opts.readInto } : {}) });
    out.end();
    return result;
  }
  const { first, all } = await peek(source);
  if (isZstd(first)) return unpackZstd(all, out, opts.tocDigest, opts.chunkSize);
  const result = await unpackLayer(all, write, { tocDigest: opts.tocDigest });
  out.end();
  return result;
}

/** `first` (unless empty), then `rest`. */
async function* prepended(first: Buffer, rest?: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  if (first.length > 0) yield first;
  if (rest) yield* rest;
}
