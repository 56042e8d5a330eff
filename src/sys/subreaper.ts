/**
 * Child subreaper (prctl PR_SET_CHILD_SUBREAPER): orphans below us (a container's init after
 * runc exits, the shells' background jobs) are reparented to this process instead of pid 1,
 * so we can wait for them and learn how they ended.
 */
import { check, ffi, libc } from './libc.ts';
import { PR_GET_CHILD_SUBREAPER, PR_SET_CHILD_SUBREAPER } from './prctl.ts';

export function setChildSubreaper(enabled = true): void {
  check(
    libc().prctl(PR_SET_CHILD_SUBREAPER, enabled ? 1n : 0n, 0n, 0n, 0n),
    'prctl',
    `PR_SET_CHILD_SUBREAPER, ${enabled ? 1 : 0}`,
  );
}

export function isChildSubreaper(): boolean {
  // arg2 is an `int *` the kernel writes to; prctl's arguments are unsigned longs, so the
  // address goes in as a BigInt.
  const flag = Buffer.alloc(4);
  check(
    libc().prctl(PR_GET_CHILD_SUBREAPER, ffi().getRawPointer(flag), 0n, 0n, 0n),
    'prctl',
    'PR_GET_CHILD_SUBREAPER',
  );
  return flag.readInt32LE(0) !== 0;
}
