/**
 * glibc's malloc_trim(0): hands the free memory at the top of the malloc heaps (and whole free
 * pages inside them) back to the kernel. Node keeps what start-up freed (module loading, the
 * first TLS/zlib/ffi setup) resident for ever otherwise; an idle shim calls this once things
 * are quiet (shims/outrigger-v2/daemon-memory.ts). A binding of its own so that a host whose
 * libc lacks the symbol (musl) only loses this call, not the rest of src/sys.
 */
let trim: ((pad: bigint) => number) | null | undefined;

function bind(): ((pad: bigint) => number) | null {
  if (trim !== undefined) return trim;
  try {
    const ffi = process.getBuiltinModule('node:ffi');
    const { functions } = ffi.dlopen(null, { malloc_trim: { return: 'i32', arguments: ['u64'] } } as const);
    trim = (pad: bigint) => functions.malloc_trim(pad);
  } catch {
    trim = null;
  }
  return trim;
}

/** True when memory was returned; false when nothing could be, or the call is unavailable. */
export function mallocTrim(): boolean {
  const fn = bind();
  return fn !== null && fn(0n) === 1;
}
