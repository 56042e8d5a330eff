/**
 * Where a terminal's output goes (the sink ConsoleIo pipes the pty master into), chosen like
 * the non-tty stdio from the stdout URI. The Go runc shim sends a console to a FIFO or to a
 * binary:// logger's stdout pipe (and refuses file://, which it tries to open as a FIFO); we
 * also take file://. For file:// and binary:// the sink is the stdout pipe of a FileIo or
 * BinaryIo opened exactly as for a non-tty process, so rotation, the logger's ready/timeout
 * contract, supervision and the fallback file are the same code, not a copy.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { Writable } from 'node:stream';
import type { ProcessIo, StdioOwner } from './process-io.ts';
import { StdioError } from './process-io.ts';

const { O_RDWR, O_WRONLY, O_APPEND, O_NOCTTY } = fs.constants;

export interface ConsoleOutput {
  /** For error messages: the path or URI the output goes to. */
  readonly name: string;
  /** Opens the writer once the pty master has arrived; ConsoleIo ends it when output is drained. */
  open(): Writable;
  /** The process has exited (a logger's supervisor wants to know). */
  processExited(): void;
  /** Everything written has been handed over (or given up): release the rest. Idempotent. */
  close(): void;
}

function openOrThrow(file: string, flags: number, what: string): number {
  try {
    return fs.openSync(file, flags | O_NOCTTY);
  } catch (err) {
    throw new StdioError(`${what}: open ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** A FIFO (opened O_RDWR: never blocks, never EPIPE while the client is away) or a regular file appended to. */
export function fifoConsoleOutput(file: string, owner: StdioOwner | undefined): ConsoleOutput {
  return {
    name: file,
    open(): Writable {
      const fifo = fs.statSync(file, { throwIfNoEntry: false })?.isFIFO() ?? false;
      const fd = fifo ? openOrThrow(file, O_RDWR, 'stdout') : openOrThrow(file, O_WRONLY | O_APPEND, 'stdout');
      if (fifo && owner !== undefined && (owner.uid !== 0 || owner.gid !== 0)) {
        try {
          fs.fchownSync(fd, owner.uid, owner.gid);
        } catch (err) {
          fs.closeSync(fd);
          throw new StdioError(`stdout: chown to ${owner.uid}:${owner.gid}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
      }
      return fifo ? new net.Socket({ fd, readable: false, writable: true }) : fs.createWriteStream('', { fd });
    },
    processExited(): void {},
    close(): void {},
  };
}

/**
 * The stdout pipe of a non-tty ProcessIo (FileIo, BinaryIo). We keep our own open of its write
 * end and let the ProcessIo drop its copies at once (including stderr's, which a terminal does
 * not use), so its reader sees end of output exactly when the console's writer ends.
 */
export function pipeConsoleOutput(io: ProcessIo, name: string): ConsoleOutput {
  const writeEnd = io.fds[1];
  if (writeEnd === 'ignore') {
    io.close();
    throw new StdioError(`stdout ${name}: no output pipe to send the terminal to`);
  }
  let fd: number | undefined;
  try {
    fd = fs.openSync(`/proc/self/fd/${writeEnd}`, O_WRONLY);
  } catch (err) {
    io.close();
    throw new StdioError(`stdout ${name}: reopen the output pipe: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  io.afterStart();
  let closed = false;
  return {
    name,
    open(): Writable {
      if (fd === undefined) throw new StdioError(`stdout ${name}: console output already opened`);
      const stream = new net.Socket({ fd, readable: false, writable: true });
      fd = undefined; // owned by the stream now
      return stream;
    },
    processExited(): void {
      io.processExited();
    },
    close(): void {
      if (closed) return;
      closed = true;
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined;
      io.close();
    },
  };
}
