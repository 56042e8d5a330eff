/**
 * Drives node:zlib's native zstd/gunzip handle synchronously on the main thread, decoding into
 * buffers we own and reuse, instead of through the zlib Transform stream.
 *
 * Why: the Transform stream makes a fresh `chunkSize` Buffer for every output chunk and hops to
 * the thread pool for each. On a 718 MB layer that cost 45k page faults, ~70 MB of garbage
 * awaiting GC (peak RSS 160 MB) and 0.65-0.75x of `zstd -dc`'s speed; decoding into a pool of
 * four 1 MiB buffers reached 0.9-1.05x with no output garbage (numbers in the README's
 * "Dependency notes"). Reads and writes still run asynchronously (thread pool / epoll), so I/O
 * overlaps decoding on the second core.
 *
 * `handle.writeSync(flush, in, inOff, inLen, out, outOff, outLen)` and the `_writeState`
 * [availOut, availIn] pair are what node:zlib's own sync functions use (lib/zlib.js); they are
 * not public API, so Node is pinned and test/zstd-decode.test.ts exercises every path here.
 */
import zlib from 'node:zlib';
import type { Format } from './formats.ts';

interface NativeHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
}

interface ZlibInternals {
  readonly _handle: NativeHandle | null;
  readonly _writeState: Uint32Array;
}

export interface InflateStep {
  /** Bytes written into the output buffer. */
  readonly produced: number;
  /** Input bytes consumed. */
  readonly consumed: number;
  /** The output buffer was filled: call again with the rest of the input. */
  readonly outputFull: boolean;
}

export class InflateFailure extends Error {
  readonly code: string | undefined;
  constructor(cause: Error & { code?: string }) {
    super(cause.message, { cause });
    this.name = 'InflateFailure';
    this.code = cause.code;
  }
}

export class NativeInflater {
  private readonly stream: zlib.ZstdDecompress | zlib.Gunzip;
  private readonly format: Format;

  constructor(format: Format, maxWindowSize: number) {
    this.format = format;
    if (format === 'gzip') {
      this.stream = zlib.createGunzip();
    } else {
      const windowLogMax = Math.max(10, Math.ceil(Math.log2(maxWindowSize)));
      this.stream = zlib.createZstdDecompress({ params: { [zlib.constants.ZSTD_d_windowLogMax]: windowLogMax } });
    }
    // The handle reports errors by destroying the stream; the error is read from `errored`.
    this.stream.on('error', () => {});
  }

  /** Decodes from `input[offset..]` into `out`; `finish` marks the end of all input (gzip checks its trailer then). */
  step(input: Uint8Array, offset: number, out: Uint8Array, finish = false): InflateStep {
    const internals = this.stream as unknown as ZlibInternals;
    const handle = internals._handle;
    if (handle === null) throw new Error('inflater used after a failure');
    const inLen = input.length - offset;
    const flush = this.format === 'gzip' && finish ? zlib.constants.Z_FINISH : zlib.constants.Z_NO_FLUSH;
    handle.writeSync(flush, input, offset, inLen, out, 0, out.length);
    const failure = this.stream.errored;
    if (failure) throw new InflateFailure(failure as Error & { code?: string });
    const [availOut, availIn] = internals._writeState as unknown as [number, number];
    return { produced: out.length - availOut, consumed: inLen - availIn, outputFull: availOut === 0 };
  }

  close(): void {
    this.stream.destroy();
  }
}
