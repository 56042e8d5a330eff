/**
 * fcntl(2) through node:ffi, for the stdin/stdout pipe tuning in pipe-size.ts and
 * pipe-blocking.ts. Best effort: null when node:ffi is unavailable, and callers then change
 * nothing (speed only).
 */

export type Fcntl = (fd: number, cmd: number, arg: number) => number;
let fcntl: Fcntl | null | undefined;

export function bindFcntl(): Fcntl | null {
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
