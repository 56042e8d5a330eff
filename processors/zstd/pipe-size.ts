/**
 * Grows the kernel buffer of a stdin/stdout pipe to 1 MiB (fcntl F_SETPIPE_SZ). A pipe holds
 * 64 KiB by default, so every read or write of a 1 MiB chunk took 16 system calls, each one a
 * thread-pool round trip here; containerd's pipes are ordinary pipes. The same remedy others
 * applied to decompressors behind containerd (Bottlerocket's 1 MiB pipe buffers for igzip,
 * ../shared/reference/users-and-anchors.md §1.1). Best effort: a refusal (not a pipe, over
 * /proc/sys/fs/pipe-max-size for an unprivileged user, no node:ffi) changes only speed.
 */
import fs from 'node:fs';

const F_SETPIPE_SZ = 1031;

type Fcntl = (fd: number, cmd: number, arg: number) => number;
let fcntl: Fcntl | null | undefined;

function bindFcntl(): Fcntl | null {
  if (fcntl !== undefined) return fcntl;
  fcntl = null;
  try {
    const ffi = process.getBuiltinModule('node:ffi') as typeof import('node:ffi') | undefined;
    if (ffi) {
      // int fcntl(int fd, int cmd, ...): the one int argument passes like a fixed one on x86-64/arm64.
      const { functions } = ffi.dlopen(null, { fcntl: { return: 'i32', arguments: ['i32', 'i32', 'i32'] } } as const);
      fcntl = functions.fcntl as Fcntl;
    }
  } catch {
    fcntl = null;
  }
  return fcntl;
}

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
