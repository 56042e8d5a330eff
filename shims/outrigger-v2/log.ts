/**
 * The shim's own log. containerd creates `<bundle>/log` as a FIFO, holds it open read-write and
 * copies whatever arrives to its own stderr (shim-protocol.md §2.10), so the daemon opens it
 * write-only without creating it. Writes never block the shim: the fd is non-blocking and a
 * line that does not fit (containerd not reading) or finds no reader (containerd down, EPIPE)
 * is dropped and counted. pino writes JSON lines; `-debug` raises the level to debug. The
 * `start`/`delete` runs must keep stdout clean and log nothing there.
 */
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';

export type Logger = pino.Logger;

/**
 * Where the lines go: the write end of one bundle's `log` FIFO. A shim serving several tasks
 * opened the first task's FIFO, and containerd stops reading it (and removes the bundle) when
 * that task is deleted, so the serving side can point the log at another task's FIFO.
 */
export class ShimLogFifo {
  #fd: number | undefined;
  #bundle: string | undefined;
  dropped = 0;

  /** The bundle whose FIFO receives the lines (undefined: none could be opened). */
  get bundle(): string | undefined {
    return this.#bundle;
  }

  /** Switches to `<bundle>/log`; keeps the current FIFO when that one cannot be opened. */
  retarget(bundle: string): boolean {
    let fd: number;
    try {
      fd = fs.openSync(path.join(bundle, 'log'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
    } catch {
      return false; // no FIFO (tests, a bundle without containerd) or no reader
    }
    if (this.#fd !== undefined) {
      try {
        fs.closeSync(this.#fd);
      } catch {
        // already gone
      }
    }
    this.#fd = fd;
    this.#bundle = bundle;
    return true;
  }

  write(line: string): boolean {
    if (this.#fd === undefined) return true;
    try {
      fs.writeSync(this.#fd, line);
    } catch {
      this.dropped++;
    }
    return true;
  }
}

/** Opens `<bundle>/log` (if containerd made it) and returns a logger writing there. */
export function openShimLog(bundle: string, opts: { debug: boolean; namespace: string; id: string }): Logger {
  return openShimLogFifo(bundle, opts).log;
}

/** As openShimLog, also handing out the destination so the log can follow live tasks. */
export function openShimLogFifo(bundle: string, opts: { debug: boolean; namespace: string; id: string }): { log: Logger; fifo: ShimLogFifo } {
  const fifo = new ShimLogFifo();
  fifo.retarget(bundle);
  const log = pino(
    {
      level: opts.debug ? 'debug' : 'info',
      base: { pid: process.pid, namespace: opts.namespace, shim: opts.id },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    fifo,
  );
  return { log, fifo };
}

/** A logger that writes nothing (start/delete: stdout is the protocol, stderr is folded into it). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
