/**
 * Work that should run while the daemon waits for an OCI runtime process and would otherwise
 * only delay a request. A pod's first Create reaches its new daemon about when it starts to
 * serve, so what the daemon can load later (its logger, the idle trim: ../serve-task-api.ts)
 * runs once `runc create` is under way: runc takes tens of milliseconds, in which the daemon's
 * thread has nothing to do (docs/shim-grouping.md, "Latency"). Each piece of work runs once.
 */
const pending: (() => void)[] = [];

/** Runs `work` the next time the daemon waits for a runtime process. */
export function whileRuntimeRuns(work: () => void): void {
  pending.push(work);
}

/** Called by the runtime adapter (./oci-runtime.ts) right after it started a runtime process. */
export function runtimeStarted(): void {
  if (pending.length === 0) return;
  // After the current turn: the caller goes on to wait, so the work fills that wait.
  setImmediate(() => {
    for (const work of pending.splice(0)) work();
  });
}
