/**
 * The decoder's output side: a pool of reused buffers (no garbage per chunk), writes that run
 * while the next chunk decodes, and the hold-back that makes a failure leave the output short.
 *
 * - The newest chunk is always held: it is written only by finish(), which the decoder calls
 *   after the input proved complete and intact (checksums, trailers, no trailing garbage).
 * - With a TarBoundaries tracker (stream-processor mode), everything after the last tar entry
 *   boundary is held too, up to `maxHeldBytes`; on failure abandon() writes up to that boundary
 *   and drops the rest, so containerd's tar reader ends cleanly and asks us for the error.
 *
 * A pooled buffer is refilled as soon as its write calls back, so `output` must be done with a
 * chunk by then: true of fs.WriteStream and socket/pipe streams, not of a sink that keeps
 * references to the chunks it was given.
 */
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { TarBoundaries } from './tar-boundaries.ts';
import { Wakeup } from '../../src/streams/wakeup.ts';

interface Held {
  readonly buffer: Buffer;
  readonly length: number;
  /** Returned to the pool after writing (false for pass-through chunks). */
  readonly pooled: boolean;
  /** Output offset of the chunk's first byte. */
  readonly start: number;
}

export interface OutputQueueOptions {
  readonly bufferSize: number;
  /** Buffers for decoding and writing, besides those holding data back. */
  readonly workingBuffers: number;
  readonly tar?: TarBoundaries;
  /** Most bytes held back waiting for a tar boundary (tar mode only). */
  readonly maxHeldBytes?: number;
  /** Where pooled buffers come from (default: plain Buffers); e.g. shared memory a hashing thread reads in place. */
  readonly allocate?: (size: number) => Buffer;
  /**
   * Asked as a buffer is handed to the output: a promise that settles when someone else reading
   * the buffer (a hashing thread) is done with it; the buffer is reused only after that too.
   */
  readonly readers?: () => Promise<void> | undefined;
}

export class OutputQueue {
  /** Bytes handed to the output so far. */
  bytes = 0;
  private readonly output: Writable;
  private readonly options: OutputQueueOptions;
  private readonly free: Buffer[] = [];
  private allocated = 0;
  private readonly maxBuffers: number;
  private readonly held: Held[] = [];
  private heldBytes = 0;
  /** Output offset after the newest chunk. */
  private produced = 0;
  /** Data past the tar boundary had to be written (entry larger than the hold budget). */
  private boundaryPassed = false;
  private failure: Error | undefined;
  private readonly wakeup = new Wakeup();
  private inFlight = 0;
  private readonly onError = (err: Error): void => this.fail(err);

  constructor(output: Writable, options: OutputQueueOptions) {
    this.output = output;
    this.options = options;
    const holdBuffers = options.tar ? Math.ceil((options.maxHeldBytes ?? 0) / options.bufferSize) : 0;
    this.maxBuffers = options.workingBuffers + holdBuffers;
    output.on('error', this.onError);
  }

  /** Stops listening to the output (several inputs may share one output, one queue each). */
  dispose(): void {
    this.output.off('error', this.onError);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wakeup.notify();
  }


  private check(): void {
    if (this.failure) throw this.failure;
  }

  /** An empty buffer from the pool (allocated on first need); waits while all are busy. */
  async buffer(): Promise<Buffer> {
    for (;;) {
      this.check();
      const buffer = this.free.pop();
      if (buffer) return buffer;
      if (this.allocated < this.maxBuffers) {
        this.allocated += 1;
        return this.options.allocate?.(this.options.bufferSize) ?? Buffer.allocUnsafeSlow(this.options.bufferSize);
      }
      // All buffers are held or being written: make room by giving up the tar-boundary hold.
      if (this.held.length > 1 && this.inFlight === 0) {
        this.boundaryPassed = true;
        this.writeOldest();
        continue;
      }
      await this.wakeup.wait();
    }
  }

  /** Returns a buffer that was not filled. */
  release(buffer: Buffer): void {
    this.free.push(buffer);
    this.wakeup.notify();
  }

  /** Queues `length` decoded bytes in `buffer`; older chunks get written when nothing holds them. */
  filled(buffer: Buffer, length: number): void {
    if (length === 0) {
      this.release(buffer);
      return;
    }
    this.options.tar?.feed(buffer.subarray(0, length));
    this.hold({ buffer, length, pooled: true, start: this.produced });
  }

  /** Queues a chunk that is not from the pool (pass-through), with backpressure. */
  async push(chunk: Buffer): Promise<void> {
    this.check();
    this.options.tar?.feed(chunk);
    this.hold({ buffer: chunk, length: chunk.length, pooled: false, start: this.produced });
    while (this.inFlight > this.options.workingBuffers) await this.wakeup.wait();
    this.check();
  }

  private hold(chunk: Held): void {
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    this.produced += chunk.length;
    const tar = this.options.tar;
    const budget = this.options.maxHeldBytes ?? 0;
    while (this.held.length > 1) {
      const oldest = this.held[0]!;
      const end = oldest.start + oldest.length;
      // In tar mode keep what lies past the boundary a failure would cut at (bounded).
      const keep = tar !== undefined && !tar.lost && !this.boundaryPassed && end > tar.previousBoundary;
      if (keep && this.heldBytes - oldest.length < budget) break;
      if (keep) this.boundaryPassed = true;
      this.writeOldest();
    }
  }

  private writeOldest(): void {
    const chunk = this.held.shift()!;
    this.heldBytes -= chunk.length;
    this.write(chunk, chunk.length);
  }

  private write(chunk: Held, length: number): void {
    this.bytes += length;
    this.inFlight += 1;
    const read = chunk.pooled ? this.options.readers?.() : undefined;
    this.output.write(chunk.buffer.subarray(0, length), (err) => {
      if (err) this.fail(err);
      const reuse = (): void => {
        this.inFlight -= 1;
        if (chunk.pooled) this.free.push(chunk.buffer);
        this.wakeup.notify();
      };
      if (read) void read.then(reuse, reuse);
      else reuse();
    });
  }

  private async drain(): Promise<void> {
    while (this.inFlight > 0) {
      this.check();
      await this.wakeup.wait();
    }
    this.check();
  }

  /** The input was complete and intact: write everything held, then wait for every write. */
  async finish(end: boolean): Promise<void> {
    this.check();
    while (this.held.length > 0) this.writeOldest();
    await this.drain();
    if (end) {
      this.output.end();
      await finished(this.output, { readable: false });
    }
  }

  /**
   * After a failure: in tar mode write what lies before the last clean cut (never the whole
   * archive), drop the rest, and wait for those writes; otherwise just drop what is held.
   */
  async abandon(): Promise<void> {
    const tar = this.options.tar;
    if (tar && !tar.lost && !this.boundaryPassed && this.failure === undefined) {
      const cut = tar.lastBoundary < this.produced ? tar.lastBoundary : tar.previousBoundary;
      for (const chunk of this.held) {
        const length = Math.min(chunk.length, cut - chunk.start);
        if (length <= 0) break;
        this.write(chunk, length);
      }
    }
    this.held.length = 0;
    this.heldBytes = 0;
    try {
      await this.drain();
    } catch {
      // The output itself failed; nothing more can be written either way.
    }
  }
}
