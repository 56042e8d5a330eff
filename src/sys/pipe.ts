/**
 * pipe2(2): a kernel pipe, which Node cannot make itself (child_process 'pipe' stdio is a
 * socketpair). Container stdio must be a real pipe, as the Go shim gives it: programs reopen
 * /dev/stdout (/proc/self/fd/1), which works on a pipe and fails with ENXIO on a socket.
 * Both ends are close-on-exec and blocking; spawn's fd inheritance clears close-on-exec in
 * the child only.
 */
import { check, libc } from './libc.ts';

const O_CLOEXEC = 0o2000000;

export interface OsPipe {
  /** Read end, owned by the caller. */
  readonly read: number;
  /** Write end, owned by the caller. */
  readonly write: number;
}

export function createPipe(): OsPipe {
  const fds = new Int32Array(2);
  check(libc().pipe2(fds, O_CLOEXEC), 'pipe2', 'O_CLOEXEC');
  return { read: fds[0]!, write: fds[1]! };
}
