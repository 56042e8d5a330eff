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

class FifoDestination {
  readonly #fd: number | undefined;
  dropped = 0;

  constructor(fd: number | undefined) {
    this.#fd = fd;
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
  let fd: number | undefined;
  try {
    fd = fs.openSync(path.join(bundle, 'log'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch {
    fd = undefined; // no FIFO (tests, a bundle without containerd) or no reader: log nowhere
  }
  return pino(
    {
      level: opts.debug ? 'debug' : 'info',
      base: { pid: process.pid, namespace: opts.namespace, shim: opts.id },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    new FifoDestination(fd),
  );
}

/** A logger that writes nothing (start/delete: stdout is the protocol, stderr is folded into it). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
