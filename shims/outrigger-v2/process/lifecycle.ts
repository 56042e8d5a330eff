/**
 * The life of one container process (init or exec) as explicit states, and the only legal
 * moves between them. Every method of the task service consults this table before acting, so
 * an exit cannot be recorded twice, a process cannot be started twice or deleted while it
 * runs, and (because `exit` is only legal from created or running) an exit is always recorded
 * after a successful start for any process that was started. Error wording follows the Go
 * runc shim's state machine (shim-protocol.md §5.4), which containerd and CRI surface to users.
 */
import type { Timestamp } from '@bufbuild/protobuf/wkt';

export interface ExitInfo {
  readonly status: number;
  readonly exitedAt: Timestamp;
}

export type ProcessState =
  | { readonly kind: 'created'; readonly pid: number | undefined }
  | { readonly kind: 'running'; readonly pid: number }
  /** Frozen by `runtime pause` (init only: execs share the cgroup and keep their own state). */
  | { readonly kind: 'paused'; readonly pid: number }
  | { readonly kind: 'stopped'; readonly pid: number | undefined; readonly exit: ExitInfo; readonly started: boolean }
  | { readonly kind: 'deleted'; readonly pid: number | undefined; readonly exit: ExitInfo | undefined };

export type ProcessEvent =
  | { readonly kind: 'start'; readonly pid: number }
  | { readonly kind: 'exit'; readonly exit: ExitInfo }
  | { readonly kind: 'delete' }
  | { readonly kind: 'pause' }
  | { readonly kind: 'resume' };

export class LifecycleError extends Error {
  readonly state: ProcessState['kind'];
  readonly event: ProcessEvent['kind'];
  constructor(state: ProcessState['kind'], event: ProcessEvent['kind'], message: string) {
    super(message);
    this.name = 'LifecycleError';
    this.state = state;
    this.event = event;
  }
}

export function initialState(pid: number | undefined): ProcessState {
  return { kind: 'created', pid };
}

/** The next state, or a LifecycleError saying why the move is not allowed. */
export function transition(state: ProcessState, event: ProcessEvent): ProcessState {
  const refuse = (message: string): never => {
    throw new LifecycleError(state.kind, event.kind, message);
  };
  switch (state.kind) {
    case 'created':
      if (event.kind === 'start') return { kind: 'running', pid: event.pid };
      if (event.kind === 'exit') return { kind: 'stopped', pid: state.pid, exit: event.exit, started: false };
      if (event.kind === 'pause') return refuse('cannot pause task in created state');
      if (event.kind === 'resume') return refuse('cannot resume task in created state');
      return { kind: 'deleted', pid: state.pid, exit: undefined };
    case 'running':
      if (event.kind === 'start') return refuse('cannot start a running process');
      if (event.kind === 'exit') return { kind: 'stopped', pid: state.pid, exit: event.exit, started: true };
      if (event.kind === 'pause') return { kind: 'paused', pid: state.pid };
      if (event.kind === 'resume') return refuse('cannot resume a running process');
      return refuse('cannot delete a running process');
    case 'paused':
      if (event.kind === 'start') return refuse('cannot start a paused process');
      // A frozen process that dies anyway (SIGKILL, OOM) is stopped like a running one.
      if (event.kind === 'exit') return { kind: 'stopped', pid: state.pid, exit: event.exit, started: true };
      if (event.kind === 'pause') return refuse('cannot pause a paused container');
      if (event.kind === 'resume') return { kind: 'running', pid: state.pid };
      return refuse('cannot delete a paused process');
    case 'stopped':
      if (event.kind === 'start') return refuse('cannot start a stopped process');
      if (event.kind === 'exit') return refuse('process has already exited');
      if (event.kind === 'pause') return refuse('cannot pause a stopped container');
      if (event.kind === 'resume') return refuse('cannot resume a stopped container');
      return { kind: 'deleted', pid: state.pid, exit: state.exit };
    case 'deleted':
      return refuse(`cannot ${event.kind === 'exit' ? 'record the exit of' : event.kind} a deleted process`);
  }
}

/** Checks a move without making it (to refuse an RPC before any side effect). */
export function assertCan(state: ProcessState, event: ProcessEvent['kind']): void {
  const probe: ProcessEvent =
    event === 'start'
      ? { kind: 'start', pid: 1 }
      : event === 'exit'
        ? { kind: 'exit', exit: { status: 0, exitedAt: { seconds: 0n, nanos: 0 } as Timestamp } }
        : { kind: event };
  transition(state, probe);
}

/** containerd.v1.types.Status numbers. */
export const TaskStatus = { unknown: 0, created: 1, running: 2, stopped: 3, paused: 4 } as const;

export function statusOf(state: ProcessState): number {
  switch (state.kind) {
    case 'created':
      return TaskStatus.created;
    case 'running':
      return TaskStatus.running;
    case 'paused':
      return TaskStatus.paused;
    case 'stopped':
    case 'deleted':
      return TaskStatus.stopped;
  }
}

/** Exit status the way the Go reaper reports it: the code, or 128 + signal. */
export function exitStatusOf(end: { state: 'exited'; code: number } | { state: 'signaled'; signal: number } | { state: 'gone' }): number {
  if (end.state === 'exited') return end.code;
  if (end.state === 'signaled') return 128 + end.signal;
  return 255; // reaped by someone else: the status is unknowable, containerd's own "unknown" value
}
