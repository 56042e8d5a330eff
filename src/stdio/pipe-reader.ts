/**
 * Reads the shim's end of a container output pipe on the event loop and hands every chunk to
 * `onData`, then `onEnd` once all writers are gone. `finish()` is for Delete: whatever is
 * still in the pipe is read at once (non-blocking) and handed over before the fd is closed,
 * so the output of a process that has exited is complete when Delete returns.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { socketFd } from '../sys/socket-fd.ts';

export interface PipeReaderEvents {
  readonly onData: (chunk: Buffer) => void;
  /** `eof`: every writer is gone (false when finish() stopped reading with the pipe still open). */
  readonly onEnd: (eof: boolean) => void;
  readonly onError: (err: Error) => void;
}

const READ_SIZE = 64 * 1024;

export class PipeReader {
  readonly #socket: Readable;
  readonly #events: PipeReaderEvents;
  #done = false;

  /** Takes ownership of `fd` (libuv makes a pipe non-blocking; anything else, e.g. /dev/null or a file, is read through the thread pool). */
  constructor(fd: number, events: PipeReaderEvents) {
    this.#events = events;
    const st = fs.fstatSync(fd);
    this.#socket = st.isFIFO() || st.isSocket()
      ? new net.Socket({ fd, readable: true, writable: false })
      : fs.createReadStream('', { fd, highWaterMark: READ_SIZE });
    this.#socket.on('data', (chunk: Buffer) => this.#events.onData(chunk));
    this.#socket.once('end', () => this.#end(true));
    this.#socket.on('error', (err) => {
      this.#events.onError(err);
      this.#end(true);
    });
  }

  get done(): boolean {
    return this.#done;
  }

  /** Reads what is left without waiting, hands it over, and releases the fd. Idempotent. */
  finish(): void {
    if (this.#done) return;
    this.#socket.pause();
    for (let b = this.#socket.read() as Buffer | null; b !== null; b = this.#socket.read() as Buffer | null) this.#events.onData(b);
    let fd: number | undefined;
    try {
      fd = this.#socket instanceof net.Socket ? socketFd(this.#socket) : undefined;
    } catch {
      fd = undefined; // already closed by an end or error
    }
    let eof = false;
    if (fd !== undefined) {
      const buf = Buffer.allocUnsafe(READ_SIZE);
      for (;;) {
        let n: number;
        try {
          n = fs.readSync(fd, buf, 0, READ_SIZE, null);
        } catch {
          break; // EAGAIN: empty; anything else: nothing more to get
        }
        if (n === 0) {
          eof = true;
          break;
        }
        this.#events.onData(Buffer.from(buf.subarray(0, n)));
      }
    }
    this.#end(eof);
  }

  #end(eof: boolean): void {
    if (this.#done) return;
    this.#done = true;
    this.#socket.destroy();
    this.#events.onEnd(eof);
  }
}
