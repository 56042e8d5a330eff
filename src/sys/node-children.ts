/**
 * Pids of children that Node's child_process spawned and libuv has not reaped yet. libuv
 * reaps its own children with waitpid(pid) from its SIGCHLD handler; if we waited on one of
 * those pids first, its ChildProcess would never emit 'exit'. Every ChildProcess is published
 * on the "child_process" diagnostics channel when it is created (before its pid is known), so
 * we keep the objects and read `.pid` when asked. Children spawned before this module was
 * first loaded are not known; load it (import src/sys/wait.ts) before spawning.
 */
import type { ChildProcess } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';

const live = new Set<ChildProcess>();

diagnosticsChannel.subscribe('child_process', (message) => {
  const child = (message as { process?: ChildProcess }).process;
  if (!child) return;
  live.add(child);
  // 'exit' comes after libuv has reaped the pid.
  child.once('exit', () => live.delete(child));
  // A spawn that failed never exits and never gets a pid; spawn() has returned by the time
  // microtasks run. (No 'error' listener here: it would swallow the caller's unhandled error.)
  queueMicrotask(() => {
    if (child.pid === undefined) live.delete(child);
  });
});

export function isUnreapedNodeChild(pid: number): boolean {
  for (const child of live) {
    if (child.pid === pid && child.exitCode === null && child.signalCode === null) return true;
  }
  return false;
}
