/**
 * Targeted, non-blocking waits on one pid at a time, for processes we did not spawn through
 * child_process (grandchildren reparented to us as subreaper, a container's init).
 *
 * Never wait on -1 or 0: libuv reaps its own children with waitpid(pid) when SIGCHLD arrives,
 * and a wildcard wait would take their exit status away from Node, so their ChildProcess
 * would never emit 'exit' (shared/reference/node-sea.md §5.4). waitPid refuses pid <= 0 and
 * the pids of child_process children that libuv has not reaped yet.
 */
import fs from 'node:fs';
import os from 'node:os';
import { lastErrno, libc, SysCallError } from './libc.ts';
import { isUnreapedNodeChild } from './node-children.ts';

const WNOHANG = 1;
const ECHILD = os.constants.errno.ECHILD;

export type PidStatus =
  /** Alive. `ourChild` is false while the pid still belongs to another parent (e.g. the shell
   * that started it has not exited yet, so it is not reparented to us). */
  | { readonly state: 'running'; readonly ourChild: boolean }
  | { readonly state: 'exited'; readonly code: number }
  | { readonly state: 'signaled'; readonly signal: number; readonly signalName: string; readonly coreDumped: boolean }
  /** Not our child and no longer in /proc: someone else (its own parent) reaped it, so its
   * status is unknown. */
  | { readonly state: 'gone' };

/** How a process ended, as far as we can know. */
export type ProcessEnd = Exclude<PidStatus, { state: 'running' }>;

let signalNames: Map<number, string> | undefined;

export function signalName(signal: number): string {
  if (!signalNames) {
    signalNames = new Map();
    for (const [name, value] of Object.entries(os.constants.signals)) {
      if (!signalNames.has(value)) signalNames.set(value, name);
    }
  }
  return signalNames.get(signal) ?? `signal ${signal}`;
}

/** Decodes a wait status as the W* macros of <sys/wait.h> do (we never pass WUNTRACED). */
export function decodeWaitStatus(status: number): Exclude<ProcessEnd, { state: 'gone' }> {
  const termSignal = status & 0x7f;
  if (termSignal === 0) return { state: 'exited', code: (status >> 8) & 0xff };
  if (termSignal === 0x7f) throw new Error(`wait status 0x${status.toString(16)} is a stop, not an end`);
  return { state: 'signaled', signal: termSignal, signalName: signalName(termSignal), coreDumped: (status & 0x80) !== 0 };
}

function assertWaitablePid(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 0 || pid > 0x7fffffff) {
    // pid -1 waits for any child and 0 for the process group: both would steal libuv's exits.
    throw new RangeError(`waitPid: refusing pid ${String(pid)}; only a single positive pid may be waited on`);
  }
  if (isUnreapedNodeChild(pid)) {
    throw new Error(`waitPid: pid ${pid} is a child_process child; Node reaps it and reports it through 'exit'`);
  }
}

/** waitpid(pid, WNOHANG) on one pid; reaps it if it has ended. */
export function waitPid(pid: number): PidStatus {
  assertWaitablePid(pid);
  const status = Buffer.alloc(4);
  const result = libc().waitpid(pid, status, WNOHANG);
  if (result === pid) return decodeWaitStatus(status.readInt32LE(0));
  if (result === 0) return { state: 'running', ourChild: true };
  if (result !== -1) throw new Error(`waitpid(${pid}, WNOHANG) returned unexpected ${result}`);
  const errno = lastErrno();
  if (errno !== ECHILD) throw new SysCallError('waitpid', `${pid}, WNOHANG`, errno);
  // Not our child (any more). A pid still in /proc belongs to someone else for now; one that
  // is not was reaped by its own parent before it could be reparented to us.
  return fs.existsSync(`/proc/${pid}`) ? { state: 'running', ourChild: false } : { state: 'gone' };
}

/**
 * The start time of a pid (clock ticks after boot, field 22 of /proc/<pid>/stat), or null if
 * there is no such process. Two processes that share a pid at different times differ here.
 */
export function processStartTime(pid: number): number | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // comm (field 2) is in parentheses and may contain spaces or ')'; fields 3… follow the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const startTime = Number(fields[22 - 3]);
  return Number.isFinite(startTime) ? startTime : null;
}
