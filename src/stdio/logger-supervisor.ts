/**
 * Keeps a binary:// logger's pipes drained whatever the logger does (users-and-anchors.md §0.3:
 * a dead logger wedges the Go shim's container on a full pipe). The shim keeps its own read
 * ends of the process's stdout and stderr pipes. While the logger runs, only the logger reads
 * them. When it exits, the shim reads them itself into a bounded fallback file next to the
 * bundle and warns in the shim log, so the process never blocks; if restarts are allowed the
 * logger is started again after a back-off (1 s doubling to 30 s), on the same pipes.
 *
 * The fallback reads through a second open of each pipe (/proc/self/fd/N): libuv makes what it
 * reads non-blocking, and that must not leak into the description a restarted logger gets.
 */
import fs from 'node:fs';
import { LoggerProcess } from './logger-process.ts';
import type { LoggerCommand } from './logger-process.ts';
import type { LoggerSettings } from './logger-settings.ts';
import { OutputFile } from './output-file.ts';
import type { OutputStream } from './output-file.ts';
import { PipeReader } from './pipe-reader.ts';
import type { StdioLog } from './stdio-log.ts';

export interface SupervisorOptions {
  readonly command: LoggerCommand;
  readonly stdoutRead: number;
  readonly stderrRead: number;
  readonly settings: LoggerSettings;
  readonly fallbackPath: string;
  readonly log: StdioLog;
  readonly context: object;
}

const { O_RDONLY, O_NONBLOCK } = fs.constants;
const O_CLOEXEC = 0o2000000;

export class LoggerSupervisor {
  readonly #opts: SupervisorOptions;
  #logger: LoggerProcess | undefined;
  #restarts = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #readers = new Map<OutputStream, PipeReader>();
  /** Streams whose writers are all gone: nothing more can come. */
  #ended = new Set<OutputStream>();
  #fallback: OutputFile | undefined;
  #fallbackFailed = false;
  #lastExit = '';
  #processDone = false;
  #stopped = false;

  private constructor(opts: SupervisorOptions) {
    this.#opts = opts;
  }

  /** Starts the logger and waits until it is ready; throws (and leaves the read ends to the caller) if it never is. */
  static async start(opts: SupervisorOptions): Promise<LoggerSupervisor> {
    const sup = new LoggerSupervisor(opts);
    sup.#watch(await sup.#launch());
    return sup;
  }

  get loggerPid(): number | undefined {
    return this.#logger?.pid;
  }

  get fallbackPath(): string {
    return this.#opts.fallbackPath;
  }

  #launch(): Promise<LoggerProcess> {
    const o = this.#opts;
    return LoggerProcess.start(o.command, o.stdoutRead, o.stderrRead, o.settings.readyTimeoutMs, o.log, o.context);
  }

  #watch(logger: LoggerProcess): void {
    this.#logger = logger;
    void logger.exited.then(({ code, signal }) => {
      if (this.#logger !== logger) return;
      this.#logger = undefined;
      this.#onLoggerGone(signal ?? `status ${code}`, code !== 0);
    });
  }

  #onLoggerGone(how: string, failed: boolean): void {
    if (this.#stopped) return;
    this.#lastExit = how;
    const { log, context, command } = this.#opts;
    if (failed && !this.#processDone) log.warn({ ...context, logger: command.path, exit: how }, 'logger exited while the process runs; draining its output into the fallback file');
    else log.debug({ ...context, logger: command.path, exit: how }, 'logger exited');
    this.#drainToFallback();
    this.#maybeRestart();
  }

  #maybeRestart(): void {
    const { settings } = this.#opts;
    if (this.#restarts >= settings.maxRestarts || this.#processDone || this.#stopped) return;
    const delay = Math.min(settings.backoffMs * 2 ** this.#restarts, settings.maxBackoffMs);
    this.#restarts++;
    this.#restartTimer = setTimeout(() => void this.#restart(), delay);
  }

  async #restart(): Promise<void> {
    this.#restartTimer = undefined;
    if (this.#stopped || this.#processDone || this.#ended.size === 2) return;
    const { log, context, command } = this.#opts;
    this.#stopDrain();
    try {
      const logger = await this.#launch();
      if (this.#stopped) {
        logger.stop(this.#opts.settings.stopGraceMs);
        return;
      }
      log.warn({ ...context, logger: command.path, restart: this.#restarts, pid: logger.pid }, 'logger restarted');
      this.#watch(logger);
    } catch (err) {
      log.warn({ ...context, logger: command.path, restart: this.#restarts, err: err instanceof Error ? err.message : String(err) }, 'logger restart failed');
      this.#onLoggerGone('failed restart', true);
    }
  }

  #drainToFallback(): void {
    const { stdoutRead, stderrRead } = this.#opts;
    for (const [stream, fd] of [['stdout', stdoutRead], ['stderr', stderrRead]] as const) {
      if (this.#readers.has(stream) || this.#ended.has(stream)) continue;
      let own: number;
      try {
        own = fs.openSync(`/proc/self/fd/${fd}`, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      } catch (err) {
        this.#opts.log.warn({ ...this.#opts.context, stream, err: String(err) }, 'cannot reopen the output pipe for the fallback; the process may block');
        continue;
      }
      const reader = new PipeReader(own, {
        onData: (chunk) => this.#fallbackFile()?.write(stream, chunk),
        onEnd: (eof) => {
          this.#fallback?.endStream(stream);
          if (eof) this.#ended.add(stream);
          if (this.#readers.get(stream) === reader) this.#readers.delete(stream);
        },
        onError: () => undefined,
      });
      this.#readers.set(stream, reader);
    }
  }

  /** Hands the pipes back (to a restarted logger): reads what is there now, then lets go. */
  #stopDrain(): void {
    for (const r of [...this.#readers.values()]) r.finish();
    this.#readers.clear();
  }

  #fallbackFile(): OutputFile | undefined {
    if (this.#fallback || this.#fallbackFailed) return this.#fallback;
    const { settings, fallbackPath, log, context, command } = this.#opts;
    try {
      this.#fallback = OutputFile.open(fallbackPath, { maxSize: settings.fallbackMaxSize, maxFiles: settings.fallbackMaxFiles }, log, context);
      log.warn({ ...context, logger: command.path, exit: this.#lastExit, file: fallbackPath }, 'logger is gone; process output now goes to the fallback file');
    } catch (err) {
      this.#fallbackFailed = true;
      log.warn({ ...context, file: fallbackPath, err: String(err) }, 'cannot open the fallback file; process output is read and dropped so the process does not block');
    }
    return this.#fallback;
  }

  /** The process exited: no restarts from now on; the fallback (if any) drains to EOF. */
  processExited(): void {
    this.#processDone = true;
    clearTimeout(this.#restartTimer);
  }

  /** Delete: stop the logger (SIGTERM, SIGKILL after the grace), finish the fallback, close our read ends. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    if (this.#logger) this.#logger.stop(this.#opts.settings.stopGraceMs);
    else this.#drainToFallback(); // a dead logger left output in the pipes: keep it
    this.#stopDrain();
    this.#fallback?.close();
    for (const fd of [this.#opts.stdoutRead, this.#opts.stderrRead]) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
    }
  }
}
