/**
 * Terminal stdio (`terminal=true`, `ctr run -t`, CRI tty): the OCI runtime makes the pty and
 * sends its master over a console socket (runc --console-socket, SCM_RIGHTS); the shim copies
 * the master to the stdout FIFO and the stdin FIFO to the master, and sets the window size on
 * ResizePty. This is the one stdio mode where container bytes pass through Node: a pty master
 * cannot be handed to a client the way a FIFO can.
 *
 * Choices, and why:
 * - The master is read through a libuv TTY handle (tty.ReadStream, non-blocking, no thread of
 *   the pool parked per container). The same handle writes stdin to it. The output is piped
 *   to the FIFO with backpressure, so 10 MB of output arrives whole however slow the reader.
 * - stdout goes to a ConsoleOutput (./console-output.ts): the FIFO (opened O_RDWR: never
 *   blocks, never EPIPE while the client is away) or a regular file appended to, or the stdout
 *   pipe of the file:// / binary:// stdio the non-tty path uses. The client sees EOF once the output
 *   is drained after the process exits: the master reads EIO when the last slave fd closes.
 *   If something else keeps the slave open (a background child that outlives the exec), the
 *   output is considered drained once it has been quiet for DRAIN_IDLE_MS after the exit.
 * - stdin: like the Go shim, we keep a writer on the FIFO until CloseIO, so the process does
 *   not see end of input when a client detaches; once the FIFO ends (CloseIO and no writer
 *   left) the console is shut down, which hangs the terminal up as the Go shim does.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tty from 'node:tty';
import type { Writable } from 'node:stream';
import { fifoConsoleOutput } from './console-output.ts';
import type { ConsoleOutput } from './console-output.ts';
import { FdSocketListener } from '../sys/fd-socket-listener.ts';
import { setWindowSize } from '../sys/winsize.ts';
import type { ProcessIo, StdioFd, StdioOwner, StdioRequest } from './process-io.ts';
import { StdioError } from './process-io.ts';

const { O_RDWR, O_RDONLY, O_NOCTTY, O_NONBLOCK } = fs.constants;

/** After the exit, output that stays quiet this long is all there is (slave held elsewhere). */
const DRAIN_IDLE_MS = 250;
/** How long runc may take between connecting to the console socket and sending the master. */
const RECEIVE_TIMEOUT_MS = 60_000;

function open(file: string, flags: number, what: string): number {
  try {
    return fs.openSync(file, flags | O_NOCTTY);
  } catch (err) {
    throw new StdioError(`${what}: open ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

function fifoPath(uri: string, what: string): string {
  if (uri.startsWith('fifo://')) return uri.slice('fifo://'.length);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(uri)?.[1];
  if (scheme !== undefined) throw new StdioError(`${what}: ${scheme}:// is not supported with a terminal (FIFO paths, file:// and binary:// are)`);
  return uri;
}

export interface ConsoleSize {
  readonly width: number;
  readonly height: number;
}

export class ConsoleIo implements ProcessIo {
  /** The runtime's own stdio: unused, the process talks to the pty. */
  readonly fds: readonly [StdioFd, StdioFd, StdioFd] = ['ignore', 'ignore', 'ignore'];
  readonly #stdinPath: string;
  readonly #sink: ConsoleOutput | undefined;
  /** Our writer on the stdin FIFO: holds end of input back until CloseIO. */
  #stdinKeeper: number | undefined;
  #master: tty.ReadStream | undefined;
  #masterFd = -1;
  #input: net.Socket | undefined;
  #output: Writable | undefined;
  /** The writer as last opened, so close() can wait for it to flush before releasing the sink. */
  #writerForRelease: Writable | undefined;
  #exited = false;
  #closed = false;
  #drainTimer: NodeJS.Timeout | undefined;
  /** Errors that ended copying early, for the logs of whoever closes us. */
  readonly errors: string[] = [];

  /** Lets go of the probe that found the client's reader (./fifo-reader-wait.ts), once our writer is open. */
  #releaseReaderProbe: (() => void) | undefined;

  private constructor(stdinPath: string, sink: ConsoleOutput | undefined, releaseReaderProbe: (() => void) | undefined) {
    this.#stdinPath = stdinPath;
    this.#sink = sink;
    this.#releaseReaderProbe = releaseReaderProbe;
  }

  #releaseProbe(): void {
    const release = this.#releaseReaderProbe;
    this.#releaseReaderProbe = undefined;
    release?.();
  }

  /**
   * Checks the request; the FIFOs are opened once the master arrives (see `attach`). `output`
   * is where the pty's bytes go when stdout is not a FIFO path (file://, binary://); the
   * ConsoleIo owns it from here on, also when this throws. `releaseReaderProbe` closes the writer
   * that completed the client's open of the stdout FIFO; it is called once our own writer is open.
   */
  static open(req: StdioRequest, owner?: StdioOwner, output?: ConsoleOutput, releaseReaderProbe?: () => void): ConsoleIo {
    try {
      if (req.stderr !== '' && req.stderr !== req.stdout) {
        // A terminal has one output stream; runc rejects a separate stderr the same way.
        throw new StdioError('stderr must be empty with a terminal (the pty merges it into stdout)');
      }
      const stdin = fifoPath(req.stdin, 'stdin');
      const stdout = output === undefined ? fifoPath(req.stdout, 'stdout') : '';
      return new ConsoleIo(stdin, output ?? (stdout !== '' ? fifoConsoleOutput(stdout, owner) : undefined), releaseReaderProbe);
    } catch (err) {
      output?.close();
      releaseReaderProbe?.();
      throw err;
    }
  }

  /**
   * Runs `start` (the runtime's create, exec or restore) with a fresh console socket and waits
   * for the pty master it sends, then starts copying. If `start` fails, nothing is left open.
   */
  async attach(start: (consoleSocket: string) => Promise<void>): Promise<void> {
    if (this.#master || this.#closed) throw new StdioError('console: already attached or closed');
    // A short private dir: unix socket paths are limited to 107 bytes, bundles can be long.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pty'));
    try {
      const listener = await FdSocketListener.listen(path.join(dir, 'pty.sock'));
      const abort = new AbortController();
      const received = listener.receive({ timeoutMs: RECEIVE_TIMEOUT_MS, signal: abort.signal });
      received.catch(() => undefined); // awaited below, or abandoned when start fails
      try {
        await start(listener.path);
      } catch (err) {
        abort.abort();
        await received.then((r) => closeQuietly(r.fd)).catch(() => undefined);
        throw err;
      }
      let master: number;
      try {
        master = (await received).fd;
      } catch (err) {
        throw new StdioError(`console: the runtime did not send the pty master: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      this.#connect(master);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  #connect(masterFd: number): void {
    let inputFd: number | undefined;
    try {
      if (this.#sink) this.#output = this.#writerForRelease = this.#sink.open();
      this.#releaseProbe();
      if (this.#stdinPath !== '') {
        this.#stdinKeeper = open(this.#stdinPath, O_RDWR, 'stdin');
        inputFd = open(this.#stdinPath, O_RDONLY | O_NONBLOCK, 'stdin');
        this.#input = new net.Socket({ fd: inputFd, readable: true, writable: false });
        inputFd = undefined;
      }
    } catch (err) {
      closeQuietly(inputFd);
      closeQuietly(masterFd);
      this.close();
      throw err;
    }
    const master = new tty.ReadStream(masterFd);
    this.#master = master;
    this.#masterFd = masterFd;
    master.on('error', (err: NodeJS.ErrnoException) => {
      // EIO: every slave fd is closed, i.e. the process and its children are gone.
      if (err.code !== 'EIO') this.errors.push(`console: ${err.message}`);
      this.#finishOutput();
    });
    master.on('end', () => this.#finishOutput());
    const output = this.#output;
    if (output) {
      output.on('error', (err) => {
        this.errors.push(`console output ${this.#sink?.name ?? ''}: ${err.message}`);
        master.unpipe(output);
        master.resume(); // keep the pty drained so the process does not block on a dead reader
      });
      master.pipe(output, { end: false });
      master.on('data', () => this.#armDrainTimer());
    } else {
      master.resume();
    }
    const input = this.#input;
    if (input) {
      input.on('error', (err) => this.errors.push(`console input ${this.#stdinPath}: ${err.message}`));
      input.on('data', (chunk: Buffer) => {
        if (!master.destroyed && !master.write(chunk)) {
          input.pause();
          master.once('drain', () => input.resume());
        }
      });
      // End of input (CloseIO and the client gone): hang up the terminal, as the Go shim does.
      input.on('end', () => this.#shutdown());
    }
  }

  /** ResizePty: the window size the process sees (TIOCSWINSZ on the master; SIGWINCH follows). */
  resize(size: ConsoleSize): void {
    const master = this.#master;
    if (!master || master.destroyed) return;
    setWindowSize(this.#masterFd, { rows: size.height, cols: size.width });
  }

  afterStart(): void {}

  closeStdin(): void {
    closeQuietly(this.#stdinKeeper);
    this.#stdinKeeper = undefined;
  }

  processExited(): void {
    this.#exited = true;
    this.#sink?.processExited();
    this.#armDrainTimer();
  }

  #armDrainTimer(): void {
    if (!this.#exited || this.#closed) return;
    clearTimeout(this.#drainTimer);
    this.#drainTimer = setTimeout(() => this.#finishOutput(), DRAIN_IDLE_MS);
    this.#drainTimer.unref();
  }

  /** All output read: let the written part reach the client, then give it EOF. */
  #finishOutput(): void {
    clearTimeout(this.#drainTimer);
    const master = this.#master;
    if (master && !master.destroyed) {
      if (this.#output) master.unpipe(this.#output);
      master.destroy();
    }
    const output = this.#output;
    this.#output = undefined;
    output?.end();
  }

  /** Releases the sink once our writer has handed over what it holds (a pipe's reader then sees EOF). */
  #releaseSink(): void {
    const sink = this.#sink;
    if (!sink) return;
    const writer = this.#writerForRelease;
    if (writer && !writer.destroyed && !writer.writableFinished) {
      writer.once('close', () => sink.close());
      writer.once('finish', () => sink.close());
    } else {
      sink.close();
    }
  }

  /** Hang up: the console goes away with whatever it has not read. */
  #shutdown(): void {
    this.#finishOutput();
    this.#input?.destroy();
    this.#input = undefined;
  }

  close(): void {
    if (this.#closed) return;
    this.closeStdin();
    this.#writerForRelease = this.#output ?? this.#writerForRelease;
    this.#shutdown();
    this.#closed = true;
    this.#releaseSink();
    this.#releaseProbe();
  }
}

export function isConsoleIo(io: ProcessIo | undefined): io is ConsoleIo {
  return io instanceof ConsoleIo;
}
