/**
 * The one binding to the C library that src/sys uses, through Node 26's built-in `node:ffi`
 * (no addon, no file on disk), and the errno → Error helper every call goes through.
 *
 * node:ffi facts as found on Node 26.10.0 (x86-64 glibc), useful to whoever adds a call:
 * - `ffi.dlopen(null, defs)` resolves symbols from the running process, i.e. node's own libc;
 *   returns `{ lib, functions }`. A symbol that is not there throws at dlopen ("dlsym failed:
 *   node: undefined symbol: x"), so one missing function fails the whole binding.
 * - A signature is `{ return: 'i32', arguments: ['i32', …] }`. Unknown keys are ignored
 *   without a word: the old aliases `{ result, parameters }` give a `void f(void)` that
 *   returns undefined. The `as const` definitions below keep TypeScript's inferred types
 *   honest about that. Types used here: i32, u32, i64, u64, pointer.
 * - Arguments are checked strictly and throw a TypeError before the call: an 'i32' must be an
 *   integer Number in range ("Argument 0 must be an int32"); 'u64'/'i64' must be a BigInt, a
 *   Number is refused ("Argument 1 must be a uint64"); the count must match exactly
 *   ("Invalid argument count: expected 3, got 1"). 'i64'/'u64' results come back as BigInt,
 *   'pointer' results as BigInt addresses.
 * - A Buffer/TypedArray passed for a 'pointer' argument passes the address of its first byte
 *   (its byteOffset is honoured, so `buf.subarray(8)` works). `ffi.getRawPointer(view)` gives
 *   the same address as a BigInt, for pointers that live *inside* a struct (msghdr.msg_iov…);
 *   the caller must keep the view alive across the call.
 * - `ffi.getInt32(address, offset)` and friends read native memory; `ffi.toString(address)`
 *   reads a C string. errno is read with `getInt32(__errno_location(), 0)` right after the
 *   failing call, on the same (main) thread; nothing between the two calls touched errno in
 *   any run we made.
 * - Variadic C functions (prctl, ioctl) are declared with the fixed arguments we pass; on
 *   x86-64 and arm64 Linux that is call-compatible for integer and pointer arguments.
 * - Loading `node:ffi` prints "ExperimentalWarning: FFI is an experimental feature" once; the
 *   SEA runs with --no-warnings=ExperimentalWarning. `process.getBuiltinModule('node:ffi')`
 *   loads it without an import, so esbuild leaves it alone and nothing is paid until first use.
 * - @types/node 26 ships `node:ffi` types (ffi.d.ts), so no hand-written declarations are needed.
 */
import os from 'node:os';

type Ffi = typeof import('node:ffi');

const definitions = {
  __errno_location: { return: 'pointer', arguments: [] },
  strerror: { return: 'pointer', arguments: ['i32'] },
  // int prctl(int option, unsigned long arg2, arg3, arg4, arg5)
  prctl: { return: 'i32', arguments: ['i32', 'u64', 'u64', 'u64', 'u64'] },
  waitpid: { return: 'i32', arguments: ['i32', 'pointer', 'i32'] },
  // ssize_t recvmsg/sendmsg(int fd, struct msghdr *msg, int flags)
  recvmsg: { return: 'i64', arguments: ['i32', 'pointer', 'i32'] },
  sendmsg: { return: 'i64', arguments: ['i32', 'pointer', 'i32'] },
  socketpair: { return: 'i32', arguments: ['i32', 'i32', 'i32', 'pointer'] },
  // int getsockopt(int fd, int level, int name, void *value, socklen_t *len)
  getsockopt: { return: 'i32', arguments: ['i32', 'i32', 'i32', 'pointer', 'pointer'] },
  // int ioctl(int fd, unsigned long request, void *arg)
  ioctl: { return: 'i32', arguments: ['i32', 'u64', 'pointer'] },
  eventfd: { return: 'i32', arguments: ['u32', 'i32'] },
  pipe2: { return: 'i32', arguments: ['pointer', 'i32'] },
  posix_openpt: { return: 'i32', arguments: ['i32'] },
  grantpt: { return: 'i32', arguments: ['i32'] },
  unlockpt: { return: 'i32', arguments: ['i32'] },
  // int ptsname_r(int fd, char *buf, size_t len): returns the error number itself
  ptsname_r: { return: 'i32', arguments: ['i32', 'pointer', 'u64'] },
} as const;

interface Binding {
  readonly ffi: Ffi;
  readonly fns: ReturnType<typeof openLibc>;
}

function openLibc(ffi: Ffi) {
  return ffi.dlopen(null, definitions).functions;
}

let binding: Binding | undefined;

function bind(): Binding {
  if (binding) return binding;
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) {
    // The struct layouts and constants in src/sys are those of LP64 Linux (x86-64, arm64).
    throw new Error(`src/sys supports linux x64/arm64 only, not ${process.platform} ${process.arch}`);
  }
  const ffi = process.getBuiltinModule('node:ffi');
  if (!ffi) throw new Error(`node:ffi is not available in Node ${process.version} (need Node >= 26.1)`);
  binding = { ffi, fns: openLibc(ffi) };
  return binding;
}

/** The libc functions, resolved on first use. */
export function libc(): Binding['fns'] {
  return bind().fns;
}

/** The `node:ffi` module itself (getRawPointer, getInt32…), loaded on first use. */
export function ffi(): Ffi {
  return bind().ffi;
}

/** errno of the calling thread; read it immediately after the failing call. */
export function lastErrno(): number {
  const b = bind();
  return b.ffi.getInt32(b.fns.__errno_location(), 0);
}

let errnoNames: Map<number, string> | undefined;

/** ECHILD for 10 etc.; the first name wins where two share a number (EAGAIN over EWOULDBLOCK). */
export function errnoName(errno: number): string {
  if (!errnoNames) {
    errnoNames = new Map();
    for (const [name, value] of Object.entries(os.constants.errno)) {
      if (!errnoNames.has(value)) errnoNames.set(value, name);
    }
  }
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

function errnoText(errno: number): string {
  try {
    const b = bind();
    return b.ffi.toString(b.fns.strerror(errno)) ?? '';
  } catch {
    return '';
  }
}

/**
 * A failed system call. Shaped like Node's own ErrnoException (`code`, `errno`, `syscall`)
 * so callers can switch on `err.code === 'EAGAIN'` as they would for an fs error.
 */
export class SysCallError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, args: string, errno: number) {
    const code = errnoName(errno);
    const text = errnoText(errno);
    super(`${syscall}(${args}) failed: ${code}${text ? ` (${text})` : ''}`);
    this.name = 'SysCallError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** Throws SysCallError when a libc call returned -1; otherwise passes the result through. */
export function check(result: number, syscall: string, args: string): number {
  if (result === -1) throw new SysCallError(syscall, args, lastErrno());
  return result;
}

/** The same for calls returning ssize_t (a BigInt through node:ffi). */
export function checkSize(result: bigint, syscall: string, args: string): number {
  if (result === -1n) throw new SysCallError(syscall, args, lastErrno());
  return Number(result);
}

/** Rejects anything that cannot be a file descriptor before it reaches C. */
export function assertFd(fd: number, what: string): void {
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
    throw new RangeError(`${what}: not a file descriptor: ${String(fd)}`);
  }
}
