/**
 * Reaps the pids we are told about (grandchildren reparented to us as subreaper, a container's
 * init) and reports each end exactly once, next to child_process without disturbing it.
 *
 * Trigger: process 'SIGCHLD'. Node delivers it to every listener, libuv's own child watcher
 * included, and signals coalesce, so on each one we try every tracked pid with a targeted
 * waitpid(pid, WNOHANG); libuv does the same for its pids and nobody steals from anybody.
 * Tracking also checks at once, because a pid may already be our zombie. A tracked pid that
 * is not (yet) our child gives us no SIGCHLD when it ends (its own parent reaps it), so while
 * there is one we also look every `recheckMs`: it ends as 'gone' when it leaves /proc or when
 * its pid now belongs to a process with another start time.
 *
 * Neither the signal listener nor the timer keeps the event loop alive: whoever awaits an end
 * must have a reason to be running (a server, a timeout).
 */
import { EventEmitter } from 'node:events';
import { processStartTime, waitPid, type PidStatus, type ProcessEnd } from './wait.ts';

export interface ChildReaperEvents {
  exit: [pid: number, end: ProcessEnd];
}

export interface ChildReaperOptions {
  /** How often to look at tracked pids that are not our children yet. Default 500 ms. */
  readonly recheckMs?: number;
}

interface Tracked {
  readonly pid: number;
  /** Start time when tracking began (null if it was already gone from /proc). */
  readonly startTime: number | null;
  readonly promise: Promise<ProcessEnd>;
  readonly resolve: (end: ProcessEnd) => void;
  readonly reject: (err: Error) => void;
  notOurChild: boolean;
}

export class ChildReaper extends EventEmitter<ChildReaperEvents> {
  readonly #tracked = new Map<number, Tracked>();
  readonly #recheckMs: number;
  #listening = false;
  #recheckTimer: NodeJS.Timeout | undefined;
  readonly #onSigchld = (): void => this.reapTracked();

  constructor(options: ChildReaperOptions = {}) {
    super();
    this.#recheckMs = options.recheckMs ?? 500;
  }

  /**
   * Starts watching `pid` and resolves with how it ended. Tracking the same pid twice gives
   * the same promise. Throws at once for a pid that may not be waited on (<= 0, a
   * child_process child). The promise rejects only if waitpid fails in an unexpected way.
   */
  track(pid: number): Promise<ProcessEnd> {
    const existing = this.#tracked.get(pid);
    if (existing) return existing.promise;
    // Listen before the first look, so an end between the two is not missed.
    this.#listen();
    const startTime = processStartTime(pid);
    let first: PidStatus;
    try {
      first = waitPid(pid);
    } catch (err) {
      this.#stopIfIdle();
      throw err;
    }
    let resolve!: (end: ProcessEnd) => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<ProcessEnd>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const entry: Tracked = { pid, startTime, promise, resolve, reject, notOurChild: false };
    this.#tracked.set(pid, entry);
    this.#settle(entry, first);
    this.#stopIfIdle();
    return promise;
  }

  /** Pids still being watched. */
  get pids(): number[] {
    return [...this.#tracked.keys()];
  }

  /** Looks at every tracked pid now (the SIGCHLD handler; callable after any hint of an exit). */
  reapTracked(): void {
    for (const entry of [...this.#tracked.values()]) {
      let status: PidStatus;
      try {
        status = waitPid(entry.pid);
      } catch (err) {
        this.#tracked.delete(entry.pid);
        entry.reject(err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      this.#settle(entry, status);
    }
    this.#stopIfIdle();
  }

  /** Stops watching; pending ends reject. */
  close(): void {
    const pending = [...this.#tracked.values()];
    this.#tracked.clear();
    this.#stopIfIdle();
    for (const entry of pending) entry.reject(new Error(`ChildReaper closed while waiting for pid ${entry.pid}`));
  }

  #settle(entry: Tracked, status: PidStatus): void {
    let end: ProcessEnd;
    if (status.state === 'running') {
      if (status.ourChild || !this.#pidWasReused(entry)) {
        entry.notOurChild = !status.ourChild;
        return;
      }
      end = { state: 'gone' };
    } else {
      end = status;
    }
    if (this.#tracked.get(entry.pid) !== entry) return;
    this.#tracked.delete(entry.pid);
    entry.resolve(end);
    this.emit('exit', entry.pid, end);
  }

  /** A pid that is not our child may have ended and been reused by an unrelated process. */
  #pidWasReused(entry: Tracked): boolean {
    if (entry.startTime === null) return false;
    const now = processStartTime(entry.pid);
    return now !== null && now !== entry.startTime;
  }

  #listen(): void {
    if (this.#listening) return;
    this.#listening = true;
    process.on('SIGCHLD', this.#onSigchld);
  }

  #stopIfIdle(): void {
    if (this.#tracked.size === 0) {
      if (this.#listening) {
        this.#listening = false;
        process.off('SIGCHLD', this.#onSigchld);
      }
      this.#setRecheck(false);
      return;
    }
    this.#setRecheck([...this.#tracked.values()].some((e) => e.notOurChild));
  }

  #setRecheck(wanted: boolean): void {
    if (wanted && !this.#recheckTimer) {
      this.#recheckTimer = setInterval(() => this.reapTracked(), this.#recheckMs).unref();
    } else if (!wanted && this.#recheckTimer) {
      clearInterval(this.#recheckTimer);
      this.#recheckTimer = undefined;
    }
  }
}
