/**
 * Deleting a process drops whatever output its client never read (the shim's FIFO end goes
 * with it). That is the client's doing (it deleted before reading), but an operator looking for
 * a container's missing output should find it said once in the shim's log.
 */
import type { ProcessIo } from '../../../src/stdio/process-io.ts';
import type { Logger } from '../log.ts';

export function warnUnreadOutput(io: ProcessIo, log: Logger, who: { container: string; exec?: string }): void {
  const bytes = io.unreadOutputBytes?.() ?? 0;
  if (bytes > 0) log.warn({ ...who, bytes }, 'deleted before its client read all of its output; the unread bytes are dropped');
}
