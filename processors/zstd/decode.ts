/**
 * Streams zstd or gzip input to its decompressed bytes with bounded memory, and fails loudly:
 * every failure is a DecodeError naming the compressed byte offset and the reason, and on any
 * failure the last decoded chunk is never written. A consumer that checks a digest of what it
 * read (containerd's diff_id check) therefore sees a short stream even when the fault sits in
 * the very last bytes (a frame checksum, a gzip trailer, trailing garbage) and the process'
 * exit status is missed (containerd#6914).
 *
 * Input chunks may be reused by their producer once the next one is requested (io.ts reads
 * files into two alternating buffers), so nothing here keeps a reference to one.
 */
import type { Writable } from 'node:stream';
import { ZstdFrameScanner, ZstdStructureError, type FrameInfo } from './zstd-frame-scanner.ts';
import { detectFormat, type Format } from './formats.ts';
import { GarbagePacer } from './garbage-pacer.ts';
import { InflateFailure, NativeInflater } from './native-inflater.ts';
import { OutputQueue } from './output-queue.ts';
import { TarBoundaries } from './tar-boundaries.ts';

export interface DecodeOptions {
  /** Largest zstd window accepted, in bytes. */
  readonly maxWindowSize: number;
  /** Size of each output buffer. */
  readonly chunkSize: number;
  /** Formats this run accepts; anything else is an error unless passThrough is set. */
  readonly formats: readonly Format[];
  /** Copy input that is not in an accepted format to the output unchanged (`zstd -dcf`). */
  readonly passThrough: boolean;
  readonly onFrame?: (frame: FrameInfo) => void;
  /** End `output` on success (false when several inputs share one output). */
  readonly end: boolean;
  /** Input bytes between forced young-generation collections (input chunks from pipes are fresh buffers); 0 = off. */
  readonly gcEvery?: number;
  /**
   * The output is a tar that containerd extracts: on failure cut it at an entry boundary, holding
   * back at most this many bytes to be able to (output-queue.ts). Undefined: plain hold-back.
   */
  readonly tarHoldBytes?: number;
  /**
   * Watches a zstd stream as it decodes (zstd:chunked verification): told where each zstd frame
   * starts in the decoded output, shown every decoded byte and every compressed chunk, and asked
   * at the end of the input to judge the layer before the held-back output is released.
   */
  readonly observer?: DecodeObserver;
}

/**
 * See DecodeOptions.observer. Calls come in stream order: `input` for each compressed chunk
 * (after its frame headers were scanned), `frameStart` when everything decoded before a zstd
 * frame's first byte has gone to `data`, `end` once the input proved complete and intact.
 */
export interface DecodeObserver {
  /** Every frame the scanner finds (zstd and skippable), as soon as its header is read. */
  frame(frame: FrameInfo): void;
  /** A compressed chunk that starts at input offset `base`; valid only during the call. */
  input(chunk: Buffer, base: number): void;
  /** The zstd frame at input offset `offset` starts here in the decoded stream. */
  frameStart(offset: number): void;
  /**
   * False once frame starts no longer matter (the layer turned out plain): decoding then runs in
   * whole input chunks again instead of stopping at every frame start.
   */
  wantsFrameStarts(): boolean;
  /** Decoded bytes, in order; valid only during the call. */
  data(chunk: Buffer): void;
  /** Throws to fail the layer; the held-back output is then never written. */
  end(inputBytes: number): Promise<void>;
  /** Output buffers the observer can read without copying (see OutputQueueOptions.allocate/readers). */
  allocate?(size: number): Buffer;
  readers?(): Promise<void> | undefined;
}

export interface DecodeResult {
  /** What the input was; 'raw' when it was passed through. */
  readonly format: Format | 'raw';
  readonly inputBytes: number;
  readonly outputBytes: number;
  readonly frames?: { readonly zstd: number; readonly skippable: number };
}

export class DecodeError extends Error {
  /** Compressed-input offset of the fault: exact for structure errors, else where the failing decoder call began. */
  readonly offset: number;
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DecodeError';
    this.offset = offset;
  }
}

/** Output buffers in use at once: one being filled, one held back, two being written. */
const WORKING_BUFFERS = 4;

/** Node's zlib/zstd error texts are terse; say what they mean for a layer. */
function describeDecoderError(format: Format, err: InflateFailure): string {
  const code = err.code ?? '';
  if (code === 'ZSTD_error_checksum_wrong') return 'content checksum mismatch: the decompressed data is corrupt';
  if (code === 'ZSTD_error_frameParameter_windowTooLarge') return 'frame window larger than the memory limit';
  if (format === 'gzip' && err.message === 'incorrect data check') return 'CRC-32 mismatch in a gzip member trailer: the decompressed data is corrupt';
  if (format === 'gzip' && err.message === 'incorrect length check') return 'length mismatch in a gzip member trailer: the decompressed data is corrupt';
  if (format === 'gzip' && err.message === 'incorrect header check') return 'bytes after a gzip member are not another gzip member (trailing garbage or corruption)';
  return `corrupt ${format} data (${err.message}${code ? `, ${code}` : ''})`;
}

function failUnknown(first: Buffer, options: DecodeOptions): never {
  const hex = [...first.subarray(0, 4)].map((x) => x.toString(16).padStart(2, '0')).join(' ');
  const wanted = options.formats.join(' or ');
  if (first.length === 0) throw new DecodeError(`input is empty: expected ${wanted} data`, 0);
  throw new DecodeError(`not ${wanted} data at byte 0: input starts with bytes ${hex}`, 0);
}

/**
 * Decodes `input` into `output`. `output` is ended on success when `options.end`; on failure
 * the held-back last chunk is dropped and `output` is left for the caller to destroy.
 */
export async function decodeStream(input: AsyncIterable<Buffer>, output: Writable, options: DecodeOptions): Promise<DecodeResult> {
  const iterator = input[Symbol.asyncIterator]();
  try {
    return await decodeFrom(iterator, output, options);
  } finally {
    // Stop the producer (waits for its read in flight, closes a file) on every path.
    await iterator.return?.();
  }
}

async function decodeFrom(iterator: AsyncIterator<Buffer>, output: Writable, options: DecodeOptions): Promise<DecodeResult> {
  // Sniff the format from the first 4 bytes (copied: the producer may reuse its buffer).
  const head: Buffer[] = [];
  let headBytes = 0;
  let inputDone = false;
  while (headBytes < 4) {
    const next = await iterator.next();
    if (next.done) {
      inputDone = true;
      break;
    }
    head.push(Buffer.from(next.value));
    headBytes += next.value.length;
  }
  const first = Buffer.concat(head);
  const detected = detectFormat(first);
  const format: Format | 'raw' =
    detected !== undefined && options.formats.includes(detected) ? detected : options.passThrough ? 'raw' : failUnknown(first, options);

  const pacer = new GarbagePacer(options.gcEvery ?? 0);
  async function* chunks(): AsyncGenerator<Buffer> {
    if (first.length > 0) yield first;
    while (!inputDone) {
      const next = await iterator.next();
      if (next.done) return;
      pacer.allocated(next.value.length);
      yield next.value;
    }
  }

  const queue = new OutputQueue(output, {
    bufferSize: options.chunkSize,
    workingBuffers: WORKING_BUFFERS,
    ...(options.tarHoldBytes !== undefined ? { tar: new TarBoundaries(), maxHeldBytes: options.tarHoldBytes } : {}),
    ...(format === 'zstd' && options.observer?.allocate && options.observer.readers
      ? { allocate: options.observer.allocate.bind(options.observer), readers: options.observer.readers.bind(options.observer) }
      : {}),
  });
  try {
    let inputBytes = 0;
    let frames: DecodeResult['frames'];
    if (format === 'raw') {
      for await (const chunk of chunks()) {
        inputBytes += chunk.length;
        await queue.push(Buffer.from(chunk));
      }
    } else {
      ({ inputBytes, frames } = await inflate(format, chunks(), queue, options));
      if (format === 'zstd' && options.observer) {
        try {
          await options.observer.end(inputBytes);
        } catch (err) {
          if (err instanceof DecodeError) throw err;
          throw new DecodeError(err instanceof Error ? err.message : String(err), inputBytes, { cause: err });
        }
      }
    }
    await queue.finish(options.end);
    return { format, inputBytes, outputBytes: queue.bytes, ...(frames ? { frames } : {}) };
  } catch (err) {
    await queue.abandon();
    if (err instanceof DecodeError) throw err;
    const failure = err as Error & { code?: string };
    throw new DecodeError(`output: ${failure.message}${failure.code ? ` (${failure.code})` : ''}`, -1, { cause: err });
  } finally {
    queue.dispose();
  }
}

async function inflate(
  format: Format,
  chunks: AsyncIterable<Buffer>,
  queue: OutputQueue,
  options: DecodeOptions,
): Promise<{ inputBytes: number; frames: DecodeResult['frames'] }> {
  let frameStart: number | undefined;
  const observer = format === 'zstd' ? options.observer : undefined;
  /** zstd frame starts the observer has not been told about yet, in input order. */
  const boundaries: number[] = [];
  const onFrame = (frame: FrameInfo): void => {
    if (frame.kind === 'zstd') frameStart = frame.offset;
    if (observer) {
      observer.frame(frame);
      if (frame.kind === 'zstd' && observer.wantsFrameStarts()) boundaries.push(frame.offset);
    }
    options.onFrame?.(frame);
  };
  const scanner = format === 'zstd' ? new ZstdFrameScanner({ maxWindowSize: options.maxWindowSize, onFrame }) : undefined;
  let chunkEnd = 0;
  const inflater = new NativeInflater(format, options.maxWindowSize);
  let base = 0;
  const fail = (err: unknown, at: number): never => {
    if (err instanceof ZstdStructureError) throw new DecodeError(`zstd: ${err.message}`, err.offset, { cause: err });
    if (err instanceof InflateFailure) {
      if (err.code === 'Z_BUF_ERROR') throw new DecodeError(`${format}: input truncated at byte ${at}: it ends inside a gzip member`, at, { cause: err });
      const frame = frameStart !== undefined ? `, in the frame that starts at byte ${frameStart}` : '';
      throw new DecodeError(`${format}: ${describeDecoderError(format, err)} (detected while decoding compressed bytes ${at}..${chunkEnd}${frame})`, at, {
        cause: err,
      });
    }
    throw err;
  };
  try {
    for await (const chunk of chunks) {
      // The scanner sees each chunk first, so a bad frame header or trailing garbage is reported
      // at its exact offset before the decoder allocates a window for it.
      try {
        scanner?.push(chunk);
      } catch (err) {
        fail(err, base);
      }
      observer?.input(chunk, base);
      let offset = 0;
      chunkEnd = base + chunk.length;
      // The buffer being filled: steps cut short at frame starts continue in it, so a layer of
      // many small frames does not spend a pooled buffer per frame.
      let out: Buffer | undefined;
      let fill = 0;
      for (;;) {
        // With an observer, the decoder gets input only up to the next zstd frame start, so the
        // output produced by then is exactly what precedes that frame (frames are independent;
        // a frame whose magic began in the previous chunk has produced nothing yet).
        let limit = chunk.length;
        if (observer && boundaries.length > 0) {
          if (observer.wantsFrameStarts()) {
            while (boundaries.length > 0 && boundaries[0]! <= base + offset) observer.frameStart(boundaries.shift()!);
            if (boundaries.length > 0 && boundaries[0]! < base + chunk.length) limit = boundaries[0]! - base;
          } else {
            boundaries.length = 0;
          }
        }
        const input = limit === chunk.length ? chunk : chunk.subarray(0, limit);
        out ??= await queue.buffer();
        let step;
        try {
          step = inflater.step(input, offset, fill === 0 ? out : out.subarray(fill));
        } catch (err) {
          queue.release(out);
          fail(err, base + offset);
        }
        offset += step!.consumed;
        if (observer && step!.produced > 0) observer.data(out.subarray(fill, fill + step!.produced));
        fill += step!.produced;
        if (step!.outputFull) {
          queue.filled(out, fill);
          out = undefined;
          fill = 0;
          continue;
        }
        if (offset < limit) {
          // zstd's decoder stops at bytes that are not a frame without an error; the scanner
          // reports those first, so reaching this means the two disagree: refuse the rest.
          throw new DecodeError(`${format}: the decoder stopped at byte ${base + offset} without an error; refusing the rest`, base + offset);
        }
        if (offset < chunk.length) continue;
        break;
      }
      if (out) queue.filled(out, fill);
      base += chunk.length;
    }
    try {
      scanner?.finish();
    } catch (err) {
      fail(err, base);
    }
    if (format === 'gzip') {
      // Z_FINISH with no input: zlib reports a member that ended early as Z_BUF_ERROR.
      const empty = new Uint8Array(0);
      for (;;) {
        const out = await queue.buffer();
        let step;
        try {
          step = inflater.step(empty, 0, out, true);
        } catch (err) {
          queue.release(out);
          fail(err, base);
        }
        queue.filled(out, step!.produced);
        if (!step!.outputFull) break;
      }
    }
  } finally {
    inflater.close();
  }
  return { inputBytes: base, frames: scanner?.frames };
}
