/**
 * Grows the kernel buffer of a stdin/stdout pipe to 1 MiB (fcntl F_SETPIPE_SZ). A pipe holds
 * 64 KiB by default, so every read or write of a 1 MiB chunk took 16 system calls, each one a
 * thread-pool round trip here; containerd's pipes are ordinary pipes. The same remedy others
 * applied to decompressors behind containerd (Bottlerocket's 1 MiB pipe buffers for igzip,
 * ../shared/reference/users-and-anchors.md §1.1). Best effort: a refusal (not a pipe, over
 * /proc/sys/fs/pipe-max-size for an unprivileged user, no node:ffi) changes only speed.
 */
import fs from 'node:fs';
import { bindFcntl } from './fcntl.ts';

const F_SETPIPE_SZ = 1031;

/** Returns the new size, or undefined when `fd` is not a pipe or the kernel said no. */
export function growPipe(fd: number, bytes: number): number | undefined {
  try {
    if (!fs.fstatSync(fd).isFIFO()) return undefined;
  } catch {
    return undefined;
  }
  const call = bindFcntl();
  if (!call) return undefined;
  const result = call(fd, F_SETPIPE_SZ, bytes);
  return result > 0 ? result : undefined;
}
