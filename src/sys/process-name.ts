/**
 * The kernel's name for this process (comm: what `ps`, `top` and /proc/<pid>/comm show), set
 * with prctl(PR_SET_NAME). It names the calling thread; called from JavaScript that is the
 * main thread, whose comm is the process's. The kernel keeps 15 bytes and truncates silently;
 * we refuse longer names instead so a caller never ships a name it did not choose.
 */
import { check, ffi, libc } from './libc.ts';
import { PR_GET_NAME, PR_SET_NAME } from './prctl.ts';

/** TASK_COMM_LEN (16) minus the terminating NUL. */
export const MAX_PROCESS_NAME_BYTES = 15;

export function setProcessName(name: string): void {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length === 0 || bytes.length > MAX_PROCESS_NAME_BYTES || bytes.includes(0)) {
    throw new RangeError(
      `process name must be 1-${MAX_PROCESS_NAME_BYTES} bytes without NUL, got ${JSON.stringify(name)} (${bytes.length} bytes)`,
    );
  }
  const cString = Buffer.alloc(MAX_PROCESS_NAME_BYTES + 1);
  bytes.copy(cString);
  check(libc().prctl(PR_SET_NAME, ffi().getRawPointer(cString), 0n, 0n, 0n), 'prctl', `PR_SET_NAME, ${JSON.stringify(name)}`);
}

export function getProcessName(): string {
  const cString = Buffer.alloc(MAX_PROCESS_NAME_BYTES + 1);
  check(libc().prctl(PR_GET_NAME, ffi().getRawPointer(cString), 0n, 0n, 0n), 'prctl', 'PR_GET_NAME');
  const end = cString.indexOf(0);
  return cString.subarray(0, end < 0 ? cString.length : end).toString('utf8');
}
