/**
 * Reads a layer (stdin or a file) in fixed-size chunks into a small pool of SharedArrayBuffers,
 * ahead of the consumer, so that the HMAC worker (hmac-worker.ts) hashes the very bytes the main
 * thread decrypts, without a copy. The pool bounds the memory in flight: a buffer is refilled
 * only after the consumer gave it back with release(), i.e. once both threads are done with it.
 *
 * The I/O is processors/zstd/io.ts's: read(2) in the thread pool on a blocking pipe with a 1 MiB
 * pipe buffer (pipe-blocking.ts, pipe-size.ts), filling each buffer whole. Where stdin stays
 * non-blocking (EAGAIN), the rest is taken from process.stdin and copied into the pool.
 */
import fs from 'node:fs';
import { PIPE_BYTES, readFull } from '../zstd/io.ts';
import { makePipeBlocking } from '../zstd/pipe-blocking.ts';
import { growPipe } from '../zstd/pipe-size.ts';
import { Wakeup } from '../../src/streams/wakeup.ts';

export interface SharedChunk {
  /** Number of the pool buffer holding it (what the HMAC worker is told). */
  readonly index: number;
  /** The bytes, a view of that buffer: valid until release(index). */
  readonly bytes: Buffer;
}

export class SharedChunkReader {
  /** The pool, in buffer-number order (to share with a worker once). */
  readonly memories: readonly SharedArrayBuffer[];
  readonly chunkBytes: number;
  private readonly fd: number;
  private readonly buffers: Buffer[];
  private readonly free: number[];
  private readonly filled: SharedChunk[] = [];
  private eof = false;
  private failure: Error | undefined;
  private stopped = false;
  private fdClosed = false;
  /** The consumer waits in next() for a filled chunk, the read loop for a free buffer. */
  private readonly consumer = new Wakeup();
  private readonly reader = new Wakeup();
  private readonly reading: Promise<void>;
  private stream: AsyncIterator<Buffer> | undefined;
  private leftover: Buffer | undefined;

  /** `name`: a file, or `-` for stdin. Reading starts at once. */
  constructor(name: string, chunkBytes: number, poolSize: number) {
    if (!(chunkBytes > 0) || !(poolSize >= 2)) throw new Error(`SharedChunkReader: chunk ${chunkBytes} bytes, pool ${poolSize}: need a chunk > 0 and a pool of 2 or more`);
    this.fd = name === '-' ? 0 : fs.openSync(name, 'r');
    if (this.fd === 0) {
      growPipe(0, Math.min(PIPE_BYTES, chunkBytes));
      makePipeBlocking(0);
    }
    this.chunkBytes = chunkBytes;
    this.memories = Array.from({ length: poolSize }, () => new SharedArrayBuffer(chunkBytes));
    this.buffers = this.memories.map((m) => Buffer.from(m));
    this.free = this.buffers.map((_, i) => i);
    this.reading = this.readLoop();
  }

  /** The next chunk in order, or undefined at the end of the input. */
  async next(): Promise<SharedChunk | undefined> {
    for (;;) {
      if (this.failure) throw this.failure;
      const chunk = this.filled.shift();
      if (chunk) return chunk;
      if (this.eof) return undefined;
      await this.consumer.wait();
    }
  }

  /** True once every chunk has been handed out by next(). */
  get exhausted(): boolean {
    return this.eof && this.filled.length === 0;
  }

  /** Gives buffer `index` back for refilling. */
  release(index: number): void {
    this.free.push(index);
    this.reader.notify();
  }

  /** Makes next() reject with `err` (the HMAC worker died: its buffers never come back). */
  fail(err: Error): void {
    this.failure ??= err;
    this.consumer.notify();
  }

  /** Stops reading and closes a file (after its read in flight; stdin is never closed, and not waited for). */
  async close(): Promise<void> {
    this.stopped = true;
    this.reader.notify();
    if (this.fd === 0) return;
    await this.reading;
    if (!this.fdClosed) {
      this.fdClosed = true;
      fs.closeSync(this.fd);
    }
  }

  private async takeFree(): Promise<number | undefined> {
    for (;;) {
      if (this.stopped) return undefined;
      const index = this.free.shift();
      if (index !== undefined) return index;
      await this.reader.wait();
    }
  }

  private async readLoop(): Promise<void> {
    try {
      for (;;) {
        const index = await this.takeFree();
        if (index === undefined) return;
        const buffer = this.buffers[index]!;
        const n = await this.fill(buffer);
        if (n > 0) this.filled.push({ index, bytes: buffer.subarray(0, n) });
        else this.free.push(index);
        // Only the end of the input leaves a buffer short.
        if (n < buffer.length) this.eof = true;
        this.consumer.notify();
        if (this.eof) return;
      }
    } catch (err) {
      const e = err as Error;
      this.fail(new Error(`read ${this.fd === 0 ? 'stdin' : 'the layer file'}: ${e.message}`, { cause: e }));
    }
  }

  private async fill(buffer: Buffer): Promise<number> {
    if (this.stream) return this.fillFromStream(buffer, 0);
    const { n, eagain } = await readFull(this.fd, buffer);
    if (!eagain) return n;
    this.stream = (process.stdin as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    return this.fillFromStream(buffer, n);
  }

  private async fillFromStream(buffer: Buffer, at: number): Promise<number> {
    while (at < buffer.length) {
      if (this.leftover === undefined || this.leftover.length === 0) {
        const r = await this.stream!.next();
        if (r.done) break;
        this.leftover = r.value;
      }
      const n = this.leftover.copy(buffer, at);
      this.leftover = this.leftover.subarray(n);
      at += n;
    }
    return at;
  }
}
