/**
 * What a process's unread output means for its exit and its delete.
 *
 * Exit: ctr and the containerd client open their FIFO readers in a goroutine and, once they
 * learn of the exit, delete the process, cancelling a reader whose open had not yet returned to
 * them: its output is dropped though it sat in the FIFO. On a loaded node that goroutine can run
 * late (about 1 in 1,000 short containers at load 25, under the Go shim as under ours, measured
 * with ctr 1.6). So the exit is made known once the client has read what the process wrote, or
 * after EXIT_WAITS_FOR_OUTPUT_MS: a reader that reads has returned from its open, and a process
 * whose output nobody reads (a detached `ctr run -d`) is reported that much later, no more.
 * Nothing waits when the process left nothing unread, the usual case.
 *
 * Delete: whatever is still unread is dropped with the shim's FIFO end; said once in the log.
 */
import type { ProcessIo } from '../../../src/stdio/process-io.ts';
import type { Logger } from '../log.ts';

export const EXIT_WAITS_FOR_OUTPUT_MS = 1_000;

/** The process has exited: let its io release what it can, then wait (bounded) until its output is read. */
export async function settleOutputAfterExit(io: ProcessIo | undefined): Promise<void> {
  io?.processExited();
  await io?.outputRead?.(EXIT_WAITS_FOR_OUTPUT_MS);
}

export function warnUnreadOutput(io: ProcessIo, log: Logger, who: { container: string; exec?: string }): void {
  const bytes = io.unreadOutputBytes?.() ?? 0;
  if (bytes > 0) log.warn({ ...who, bytes }, 'deleted before its client read all of its output; the unread bytes are dropped');
}
