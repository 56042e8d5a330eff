/**
 * Input and output streams sized for throughput.
 *
 * Reads and writes are plain read(2)/write(2) calls in libuv's thread pool into buffers we
 * reuse, so I/O overlaps decoding on the second core and makes no garbage. That needs blocking
 * fds; what containerd hands a processor is blocking (Go's exec puts a child's stdio files in
 * blocking mode), and so are shell pipes. But Node switches fds 0/1 to O_NONBLOCK as soon as
 * anything touches process.stdin/stdout (even an ESM import of node:process does; the CLI's
 * start-up does), and a parent may pass non-blocking pipes, so a pipe is put back into blocking
 * mode first (pipe-blocking.ts). Where that is impossible a read or write fails with EAGAIN, and
 * we hand the rest of the stream to process.stdin/stdout, libuv streams driven by epoll, which
 * handle that mode properly but write on the main thread and make a fresh 64 KiB buffer per read.
 */
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { finished as streamFinished } from 'node:stream/promises';
import { makePipeBlocking } from './pipe-blocking.ts';
import { growPipe } from './pipe-size.ts';

/** Pipe buffer asked for on stdin/stdout pipes (the default /proc/sys/fs/pipe-max-size). */
export const PIPE_BYTES = 1024 * 1024;

/** Groups small chunks into chunks of at least `size` bytes (the last one may be shorter). */
export async function* coalesce(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of source) {
    if (bytes === 0 && chunk.length >= size) {
      yield chunk;
      continue;
    }
    parts.push(chunk);
    bytes += chunk.length;
    if (bytes >= size) {
      yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes);
      parts = [];
      bytes = 0;
    }
  }
  if (bytes > 0) yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes);
}

export interface Input {
  /** Chunks; a chunk's memory may be reused once the next one is requested. */
  readonly chunks: AsyncIterable<Buffer>;
  /**
   * Reads the next bytes straight into `buffer` (read(2) in the thread pool), filling it unless
   * the input ends first; resolves to the bytes read, 0 at the end. For a consumer with buffers
   * of its own: the verifying unpack reads into its inflate worker's shared input slots, with no
   * copy on the main thread (~15 ms of CPU less per 54 MB layer). Present only where read(2)
   * blocks (a file, or a pipe in blocking mode), and not for use once `chunks` has started.
   */
  readonly readInto?: (buffer: Buffer) => Promise<number>;
  /** Stops reading (waits for a read in flight) and closes the file. */
  close(): Promise<void>;
}

function readAt(fd: number, buffer: Buffer, offset: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buffer, offset, buffer.length - offset, null, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function isEagain(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'EAGAIN';
}

/** Fills `buffer` (a pipe returns at most its 64 KiB per read); short only at end of input. */
export async function readFull(fd: number, buffer: Buffer): Promise<{ n: number; eagain: boolean }> {
  let n = 0;
  while (n < buffer.length) {
    let got: number;
    try {
      got = await readAt(fd, buffer, n);
    } catch (err) {
      if (fd === 0 && isEagain(err)) return { n, eagain: true };
      throw err;
    }
    if (got === 0) break;
    n += got;
  }
  return { n, eagain: false };
}

/**
 * Reads into two alternating buffers: the next read runs in the thread pool while the caller
 * decodes the current chunk.
 */
async function* readAlternating(fd: number, size: number, onDone: () => void): AsyncGenerator<Buffer> {
  const buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)];
  let which = 0;
  let pending = readFull(fd, buffers[0]!);
  try {
    for (;;) {
      const { n, eagain } = await pending;
      const current = buffers[which]!;
      if (eagain) {
        if (n > 0) yield current.subarray(0, n);
        yield* coalesce(process.stdin, size);
        return;
      }
      if (n === 0) return;
      which ^= 1;
      pending = n < size ? Promise.resolve({ n: 0, eagain: false }) : readFull(fd, buffers[which]!);
      yield current.subarray(0, n);
    }
  } finally {
    // Let an outstanding read finish before the fd may be closed.
    await pending.catch(() => undefined);
    onDone();
  }
}

/** Whether read(2) on `fd` waits for data rather than failing with EAGAIN. */
function readsBlock(fd: number, pipeBlocking: boolean): boolean {
  if (pipeBlocking) return true;
  try {
    return fs.fstatSync(fd).isFile();
  } catch {
    return false;
  }
}

export function openInput(name: string, bufferSize: number): Input {
  const fd = name === '-' ? 0 : fs.openSync(name, 'r');
  let pipeBlocking = false;
  if (fd === 0) {
    growPipe(0, Math.min(PIPE_BYTES, bufferSize));
    pipeBlocking = makePipeBlocking(0);
  }
  let closed = false;
  const closeFd = (): void => {
    if (closed || fd === 0) return;
    closed = true;
    fs.closeSync(fd);
  };
  const chunks = readAlternating(fd, bufferSize, closeFd);
  const readInto = async (buffer: Buffer): Promise<number> => {
    const { n, eagain } = await readFull(fd, buffer);
    if (eagain) throw new Error('the input was switched to non-blocking mode while it was being read');
    return n;
  };
  return {
    chunks,
    ...(readsBlock(fd, pipeBlocking) ? { readInto } : {}),
    close: async () => {
      // return() runs the generator's cleanup (which waits for its read in flight); a generator
      // that never started has none, hence the direct close.
      await chunks.return(undefined);
      closeFd();
    },
  };
}

/** fd 1 as a Writable: write(2) in the thread pool; on EAGAIN the rest goes through process.stdout. */
class StdoutWriter extends Writable {
  private fallback: Writable | undefined;
  constructor(bufferSize: number) {
    super({ highWaterMark: bufferSize });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.fallback) {
      this.fallback.write(chunk, done);
      return;
    }
    const writeFrom = (offset: number): void => {
      fs.write(1, chunk, offset, chunk.length - offset, null, (err, n) => {
        if (err && isEagain(err)) {
          this.fallback = process.stdout;
          this.fallback.write(chunk.subarray(offset), done);
        } else if (err) done(err);
        else if (offset + n < chunk.length) writeFrom(offset + n);
        else done();
      });
    };
    writeFrom(0);
  }
  override _final(done: (err?: Error | null) => void): void {
    if (!this.fallback) {
      done();
      return;
    }
    // process.stdout is never closed; wait until what it queued has been flushed.
    if (this.fallback.writableNeedDrain) this.fallback.once('drain', () => done());
    else done();
  }
}

export function openStdout(bufferSize: number): Writable {
  growPipe(1, Math.min(PIPE_BYTES, bufferSize));
  makePipeBlocking(1);
  return new StdoutWriter(bufferSize);
}

/** Creates `file` for writing; refuses an existing file unless `force`. */
export function openOutputFile(file: string, force: boolean, bufferSize: number): fs.WriteStream {
  // Opened here, synchronously, so "exists" or "permission denied" is reported before any work.
  const fd = fs.openSync(file, force ? 'w' : 'wx', 0o644);
  return fs.createWriteStream('', { fd, highWaterMark: bufferSize });
}

/** Waits until a write stream has flushed everything (or failed). */
export async function finished(stream: Writable): Promise<void> {
  await streamFinished(stream, { readable: false });
}

/** A sink for `-t`: accepts and drops everything. */
export function discard(): Writable {
  return new Writable({
    highWaterMark: 1,
    write(_chunk, _enc, done) {
      done();
    },
  });
}
