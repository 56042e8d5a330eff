/**
 * Starting one binary:// logger the way the Go shim does (shim-protocol.md §4.4) and waiting
 * for it to say it is ready:
 * - argv: the URI's path, then each query key and its first value as two bare arguments
 *   (first-seen order; Go's is random, so no logger can rely on one);
 * - environment: CONTAINER_ID and CONTAINER_NAMESPACE and nothing else (no PATH);
 * - fd 3 / fd 4: read ends of the process's stdout / stderr pipes, fd 5: write end of the
 *   ready pipe; stdin and stdout /dev/null; cwd the bundle.
 * Beyond Go: the logger's stderr (which Go throws away) is read into the shim log and quoted
 * in start errors, and the wait is bounded by a timeout after which the logger is killed.
 * Ready is one byte on fd 5, or (binary:// only) fd 5 closing; for binary-v2:// an EOF
 * without a byte is a failed start.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { createPipe } from '../sys/pipe.ts';
import { StdioError } from './process-io.ts';
import type { StdioLog } from './stdio-log.ts';

export interface LoggerCommand {
  readonly path: string;
  readonly args: readonly string[];
  /** binary-v2://: a byte on fd 5 is required. */
  readonly strictReady: boolean;
  readonly containerId: string;
  readonly namespace: string;
  readonly cwd: string;
}

/** Lines of logger stderr copied into the shim log per logger, then only counted. */
const STDERR_LINES = 100;
const STDERR_TAIL = 2048;

export class LoggerProcess {
  readonly command: LoggerCommand;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stderrTail = '';

  private constructor(command: LoggerCommand, child: ChildProcess, log: StdioLog, context: object) {
    this.command = command;
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      // A spawn that failed (ENOENT, EACCES) has no exit to wait for.
      child.once('error', () => {
        if (child.pid === undefined) resolve({ code: null, signal: null });
      });
    });
    // A ChildProcess 'error' nobody listens to would take the whole shim down.
    child.on('error', (err) => log.debug({ ...context, logger: command.path, err: err.message }, 'logger process error'));
    let lines = 0;
    let partial = '';
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      this.#stderrTail = (this.#stderrTail + text).slice(-STDERR_TAIL);
      const parts = (partial + text).split('\n');
      partial = parts.pop()!.slice(-STDERR_TAIL);
      for (const line of parts) {
        if (++lines <= STDERR_LINES) log.warn({ ...context, logger: command.path, line: line.slice(0, STDERR_TAIL) }, 'logger stderr');
      }
    });
  }

  /** The last bytes the logger wrote to stderr, for error messages. */
  get stderrTail(): string {
    return this.#stderrTail.trim();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * Starts the logger on the given read ends and resolves once it is ready. On failure the
   * logger is killed and the error names it; the read ends stay the caller's either way.
   */
  static async start(command: LoggerCommand, stdoutRead: number, stderrRead: number, timeoutMs: number, log: StdioLog, context: object): Promise<LoggerProcess> {
    const ready = createPipe();
    let child: ChildProcess;
    try {
      child = spawn(command.path, [...command.args], {
        cwd: command.cwd,
        env: { CONTAINER_ID: command.containerId, CONTAINER_NAMESPACE: command.namespace },
        stdio: ['ignore', 'ignore', 'pipe', stdoutRead, stderrRead, ready.write],
      });
    } catch (err) {
      fs.closeSync(ready.read);
      fs.closeSync(ready.write);
      throw new StdioError(`logger ${command.path}: cannot start: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    // Only the logger may hold the write end now, or its EOF could never come.
    fs.closeSync(ready.write);
    const logger = new LoggerProcess(command, child, log, context);
    try {
      await logger.#waitReady(ready.read, timeoutMs);
    } catch (err) {
      child.kill('SIGKILL');
      await logger.exited;
      throw err;
    }
    return logger;
  }

  #waitReady(readFd: number, timeoutMs: number): Promise<void> {
    const { path } = this.command;
    const what = `${this.command.strictReady ? 'binary-v2' : 'binary'} logger ${path}`;
    return new Promise<void>((resolve, reject) => {
      const socket = new net.Socket({ fd: readFd, readable: true, writable: false });
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve();
      };
      const tail = (): string => (this.stderrTail ? `; its stderr: ${this.stderrTail}` : '');
      this.child.once('error', (err) => settle(new StdioError(`${what}: cannot start: ${err.message}`, { cause: err })));
      socket.once('data', () => settle());
      socket.once('end', () => {
        if (!this.command.strictReady) return settle();
        // Let the exit (and its stderr) arrive first so the error can say how it ended.
        const quick = setTimeout(() => settle(new StdioError(`${what} did not call ready (it closed fd 5 without writing a byte; it may have crashed or exited prematurely)${tail()}`)), 200);
        void this.exited.then(({ code, signal }) => {
          clearTimeout(quick);
          settle(new StdioError(`${what} did not call ready: it exited (${signal ?? `status ${code}`}) before writing a byte to fd 5${tail()}`));
        });
      });
      socket.on('error', (err) => settle(new StdioError(`${what}: reading the ready pipe: ${err.message}`, { cause: err })));
      if (timeoutMs > 0) {
        timer = setTimeout(
          () => settle(new StdioError(`${what} did not signal ready within ${formatMs(timeoutMs)} (it must write a byte to fd 5${this.command.strictReady ? '' : ' or close it'}; OUTRIGGER_LOGGER_READY_TIMEOUT sets the limit)${tail()}`)),
          timeoutMs,
        );
      }
    });
  }

  /** SIGTERM now, SIGKILL after `graceMs` if it is still there (the Go shim's Close). */
  stop(graceMs: number): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    void this.exited.then(() => clearTimeout(timer));
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
