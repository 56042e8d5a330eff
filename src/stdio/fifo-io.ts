/**
 * FIFO stdio (plain paths, `fifo://`), as ctr and CRI create them (shim-protocol.md §4.2), with
 * the FIFOs themselves given to the process instead of pipes copied by the shim: no byte of
 * container output passes through Node.
 *
 * Opening is arranged so that nothing blocks the event loop and nobody sees a premature end:
 * - stdout/stderr: we first open the FIFO O_RDWR (never blocks on Linux), which also keeps a
 *   reader so the process never gets EPIPE while the client is away (the Go shim keeps a
 *   read-only fd for the same reason); then O_WRONLY, which cannot block now, for the process.
 *   Our O_RDWR is also a writer, so the client sees EOF only once we drop it at the exit.
 * - stdin: O_RDWR first, then O_RDONLY in blocking mode for the process. Our O_RDWR is a
 *   reader, which completes the client's pending O_WRONLY open at once (ctr, the Go client and
 *   CRI start opening their writer before Create/Exec), and a writer, so nothing reading early
 *   sees EOF. We drop it once the runtime has set the process up (`afterStart`: after
 *   `create`, before the init can run user code; after `exec`), or at CloseIO if that comes
 *   first: from then on the process sees EOF exactly when the client's writer closes. Relying
 *   on CloseIO alone would hang: ctr does not send it when its input ended before Create
 *   returned (`echo hi | ctr run … cat`).
 * A path that exists but is not a FIFO (a regular file) is opened O_WRONLY|O_APPEND without
 * O_CREAT, as the Go shim does.
 *
 * IoUid/IoGid: a process running as another user that reopens its stdio (/dev/stdout is
 * /proc/self/fd/1) needs to own it. The Go shim chowns the pipes it hands over; the FIFOs are
 * what we hand over, so they are chowned (regular files are the user's and are left alone).
 */
import fs from 'node:fs';
import type { ProcessIo, StdioFd, StdioOwner, StdioRequest } from './process-io.ts';
import { StdioError } from './process-io.ts';
import { pipeUnread } from '../sys/pipe-unread.ts';

const { O_RDWR, O_RDONLY, O_WRONLY, O_APPEND, O_NOCTTY } = fs.constants;

function openOrFail(path: string, flags: number, what: string): number {
  try {
    return fs.openSync(path, flags | O_NOCTTY);
  } catch (err) {
    throw new StdioError(`${what}: open ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function isFifo(path: string): boolean {
  try {
    return fs.statSync(path).isFIFO();
  } catch (err) {
    throw new StdioError(`stdio: stat ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

const DRAIN_CHECK_MS = 5;

/** Unread bytes in the FIFO behind `fd`; 0 when that cannot be told (not a FIFO, no ffi). */
function unreadBytes(fd: number): number {
  try {
    return pipeUnread(fd);
  } catch {
    return 0;
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

export class FifoIo implements ProcessIo {
  readonly fds: readonly [StdioFd, StdioFd, StdioFd];
  /** Given to the process; ours to close once the runtime has passed them on. */
  readonly #processFds: number[] = [];
  /** Keeps stdin open for the process until CloseIO. */
  #stdinKeeper: number | undefined;
  /** Keep readers on stdout/stderr until the process exits. */
  #outputKeepers: number[] = [];
  #closed = false;
  #drainTimer: NodeJS.Timeout | undefined;
  /** outputRead() callers, woken when the drain timer finds every keeper drained (or close()). */
  #drained: (() => void)[] = [];

  private constructor(fds: readonly [StdioFd, StdioFd, StdioFd]) {
    this.fds = fds;
  }

  static open(req: StdioRequest, owner?: StdioOwner): FifoIo {
    const fds: StdioFd[] = ['ignore', 'ignore', 'ignore'];
    const keep: { stdin?: number; out: number[]; proc: number[] } = { out: [], proc: [] };
    const chown = (fd: number, what: string) => {
      if (owner === undefined || (owner.uid === 0 && owner.gid === 0)) return;
      try {
        fs.fchownSync(fd, owner.uid, owner.gid);
      } catch (err) {
        throw new StdioError(`${what}: chown to ${owner.uid}:${owner.gid}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    };
    try {
      if (req.stdin !== '') {
        keep.stdin = openOrFail(req.stdin, O_RDWR, 'stdin');
        const fd = openOrFail(req.stdin, O_RDONLY, 'stdin');
        keep.proc.push(fd);
        chown(fd, 'stdin');
        fds[0] = fd;
      }
      const opened = new Map<string, number>();
      for (const [index, p] of [[1, req.stdout], [2, req.stderr]] as const) {
        if (p === '') continue;
        const same = opened.get(p);
        if (same !== undefined) {
          fds[index] = same;
          continue;
        }
        const what = index === 1 ? 'stdout' : 'stderr';
        let fd: number;
        if (isFifo(p)) {
          keep.out.push(openOrFail(p, O_RDWR, what));
          fd = openOrFail(p, O_WRONLY, what);
          chown(fd, what);
        } else {
          fd = openOrFail(p, O_WRONLY | O_APPEND, what);
        }
        keep.proc.push(fd);
        opened.set(p, fd);
        fds[index] = fd;
      }
    } catch (err) {
      for (const fd of [keep.stdin, ...keep.out, ...keep.proc]) closeQuietly(fd);
      throw err;
    }
    const io = new FifoIo([fds[0]!, fds[1]!, fds[2]!]);
    io.#stdinKeeper = keep.stdin;
    io.#outputKeepers = keep.out;
    io.#processFds.push(...keep.proc);
    return io;
  }

  afterStart(): void {
    for (const fd of this.#processFds.splice(0)) closeQuietly(fd);
    this.closeStdin();
  }

  closeStdin(): void {
    closeQuietly(this.#stdinKeeper);
    this.#stdinKeeper = undefined;
  }

  /**
   * Our O_RDWR end keeps what the process wrote alive while the client has not opened its
   * reader yet (ctr opens it asynchronously, late on a loaded node). Closing it then would make
   * the kernel drop the buffered output, so each keeper is held until its FIFO is drained,
   * checked every few milliseconds, or until close() (the process is deleted).
   */
  processExited(): void {
    const pending: number[] = [];
    for (const fd of this.#outputKeepers.splice(0)) {
      if (unreadBytes(fd) > 0) pending.push(fd);
      else closeQuietly(fd);
    }
    if (pending.length === 0) return;
    this.#outputKeepers.push(...pending);
    this.#drainTimer ??= setInterval(() => {
      const still = this.#outputKeepers.filter((fd) => {
        if (unreadBytes(fd) > 0) return true;
        closeQuietly(fd);
        return false;
      });
      this.#outputKeepers = still;
      if (still.length === 0) this.#stopDrainTimer();
    }, DRAIN_CHECK_MS);
    this.#drainTimer.unref();
  }

  #stopDrainTimer(): void {
    if (this.#drainTimer !== undefined) clearInterval(this.#drainTimer);
    this.#drainTimer = undefined;
    for (const wake of this.#drained.splice(0)) wake();
  }

  /** After processExited(): the drain timer above is what watches the keepers; this waits for it. */
  async outputRead(timeoutMs: number): Promise<void> {
    if (this.#drainTimer === undefined) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#drained = this.#drained.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#drained.push(done);
    });
  }

  unreadOutputBytes(): number {
    return this.#outputKeepers.reduce((sum, fd) => sum + unreadBytes(fd), 0);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopDrainTimer();
    this.afterStart();
    this.closeStdin();
    for (const fd of this.#outputKeepers.splice(0)) closeQuietly(fd);
  }
}
