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
import type pino from 'pino';

/** What the shim logs with: pino's level methods (fields object first, then the message). */
export type Logger = Pick<pino.Logger, 'debug' | 'info' | 'warn' | 'error' | 'fatal'>;

type Level = keyof Logger;

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

/**
 * The shim's logger. pino (with sonic-boom and thread-stream, which load node:assert and
 * node:worker_threads) takes ≈ 8 ms to load, and the daemon needs none of it to serve its first
 * Create; so the daemon loads it right after it serves (../serve-task-api.ts), while Create
 * waits for mount and `runc create`. Lines logged before then are kept with the time they were
 * logged and written, in order and with that time, once pino is in: the lines are the same as
 * if pino had been there from the start.
 */
export class ShimLog implements Logger {
  readonly #options: { readonly debug: boolean; readonly namespace: string; readonly id: string };
  readonly #fifo: ShimLogFifo;
  #pino: pino.Logger | undefined;
  #loading: Promise<void> | undefined;
  /** Lines logged before pino was in, with their ISO time. */
  #held: { level: Level; args: unknown[]; time: string }[] = [];
  /** The time of the held line being written; undefined: now. */
  #replayTime: string | undefined;

  constructor(fifo: ShimLogFifo, options: { debug: boolean; namespace: string; id: string }) {
    this.#fifo = fifo;
    this.#options = options;
  }

  readonly debug = this.#method('debug');
  readonly info = this.#method('info');
  readonly warn = this.#method('warn');
  readonly error = this.#method('error');
  readonly fatal = this.#method('fatal');

  #method(level: Level): pino.LogFn {
    return ((...args: unknown[]) => {
      if (this.#pino !== undefined) {
        (this.#pino[level] as (...a: unknown[]) => void)(...args);
        return;
      }
      if (level === 'debug' && !this.#options.debug) return;
      this.#held.push({ level, args, time: new Date().toISOString() });
    }) as pino.LogFn;
  }

  /** Loads pino and writes the held lines; resolves at once when that is done. */
  load(): Promise<void> {
    this.#loading ??= import('pino').then(({ default: createPino }) => {
      const logger = createPino(
        {
          level: this.#options.debug ? 'debug' : 'info',
          base: { pid: process.pid, namespace: this.#options.namespace, shim: this.#options.id },
          // pino.stdTimeFunctions.isoTime, with the logging time of a held line.
          timestamp: () => `,"time":"${this.#replayTime ?? new Date().toISOString()}"`,
        },
        this.#fifo,
      );
      for (const { level, args, time } of this.#held.splice(0)) {
        this.#replayTime = time;
        (logger[level] as (...a: unknown[]) => void)(...args);
      }
      this.#replayTime = undefined;
      this.#pino = logger;
    });
    return this.#loading;
  }

  /** Runs `fn` now when pino is in (every line so far is written), else once it is. */
  whenWritten(fn: () => void): void {
    if (this.#pino !== undefined) fn();
    else void this.load().finally(fn);
  }
}

/** Opens `<bundle>/log` (if containerd made it) and returns a logger writing there. */
export function openShimLog(bundle: string, opts: { debug: boolean; namespace: string; id: string }): ShimLog {
  return openShimLogFifo(bundle, opts).log;
}

/**
 * As openShimLog, also handing out the destination so the log can follow live tasks. Lines
 * reach the FIFO once `log.load()` has run (see ShimLog).
 */
export function openShimLogFifo(bundle: string, opts: { debug: boolean; namespace: string; id: string }): { log: ShimLog; fifo: ShimLogFifo } {
  const fifo = new ShimLogFifo();
  fifo.retarget(bundle);
  return { log: new ShimLog(fifo, opts), fifo };
}

/** A logger that writes nothing (start/delete: stdout is the protocol, stderr is folded into it). */
export function silentLogger(): Logger {
  const nothing = (() => undefined) as pino.LogFn;
  return { debug: nothing, info: nothing, warn: nothing, error: nothing, fatal: nothing };
}
