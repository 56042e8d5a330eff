/**
 * libdeflate (the host's libdeflate.so.0, Debian's libdeflate0, which libtiff6 and others pull
 * in) through node:ffi, for the inflate worker: its CRC32 and its whole-buffer raw-deflate
 * decompressor. Both are optional; without them node:zlib does the same work, slower.
 *
 * CRC32 for the gzip member trailers:
 * Why: the verifying unpack checks the CRC32 of every decoded byte, and node:zlib's crc32 runs at
 * ~2.3 GB/s here (no carry-less-multiply path in Node's zlib build: 86 ms per 200 MB), a fifth of
 * the inflate thread's time. libdeflate's uses PCLMULQDQ/VPCLMULQDQ: 25 ms for the same bytes.
 * Best effort, like pipe-size.ts: no node:ffi, no library, or a library whose answer differs
 * from zlib's on a probe → zlib's crc32, with the same results either way.
 *
 * Self-contained functions (no references outside themselves): the inflate worker runs their
 * source text.
 */
export type Crc32 = (data: Uint8Array, value: number) => number;

export type Ffi = typeof import('node:ffi');

/**
 * node:ffi, or undefined where this Node has none. Loading it emits an ExperimentalWarning; the
 * binary runs with that warning off, but a worker started by other hosts (the tests) would print
 * it once per unpack: it is expected, so it is kept quiet here.
 */
export function loadFfiQuietly(): Ffi | undefined {
  const emitWarning = process.emitWarning;
  process.emitWarning = () => {};
  try {
    return process.getBuiltinModule('node:ffi') as Ffi | undefined;
  } catch {
    return undefined;
  } finally {
    process.emitWarning = emitWarning;
  }
}

export function bindFastCrc32(zlib: typeof import('node:zlib'), ffi: Ffi | undefined): Crc32 {
  const fallback: Crc32 = (data, value) => zlib.crc32(data, value);
  try {
    if (!ffi) return fallback;
    // uint32_t libdeflate_crc32(uint32_t crc, const void *buffer, size_t len)
    const { functions } = ffi.dlopen('libdeflate.so.0', { libdeflate_crc32: { return: 'u32', arguments: ['u32', 'pointer', 'u64'] } } as const);
    const native = functions.libdeflate_crc32 as (crc: number, data: Uint8Array, len: bigint) => number;
    const fast: Crc32 = (data, value) => (data.length === 0 ? value >>> 0 : native(value >>> 0, data, BigInt(data.length)) >>> 0);
    const probe = Buffer.from('outrigger: libdeflate_crc32 must agree with zlib.crc32 before it is used');
    for (const [start, seed] of [[0, 0], [7, 0x12345678], [31, 0xffffffff]] as const) {
      if (fast(probe.subarray(start), seed) !== zlib.crc32(probe.subarray(start), seed) >>> 0) return fallback;
    }
    return fast;
  } catch {
    return fallback;
  }
}

/** What a whole-member inflate did: `consumed`/`produced` are meaningful only with status 'ok'. */
export interface WholeResult {
  /** 'ok': a complete raw deflate stream; 'no-room': its output does not fit; 'fail': bad or cut-short data. */
  status: 'ok' | 'no-room' | 'fail';
  consumed: number;
  produced: number;
}

/** Inflates one complete raw deflate stream from input[at..] into out[outAt..]; the result is valid until the next call. */
export type WholeInflate = (input: Buffer, at: number, out: Buffer, outAt: number) => WholeResult;

/**
 * libdeflate's raw-deflate decompressor for a whole member at once (`libdeflate_deflate_decompress_ex`
 * reports the input it consumed, so the trailer can follow), or undefined without libdeflate.
 *
 * Why: the inflate worker is the unpack's critical path, and libdeflate decodes a member about
 * twice as fast as zlib's streaming inflate (194 MB layer: 225 ms with CRC32 against ~350 ms).
 * It needs the whole member in memory and room for all of its output, which an eStargz member
 * (one chunk, 4 MiB by default) has; the decoder (gzip-members.ts) falls back to zlib's streaming
 * inflate for any member this does not finish with 'ok', so every error message and every
 * refusal still comes from zlib. Checked on a probe against zlib before use.
 */
export function bindWholeInflate(zlib: typeof import('node:zlib'), ffi: Ffi | undefined): WholeInflate | undefined {
  try {
    if (!ffi) return undefined;
    const { functions } = ffi.dlopen('libdeflate.so.0', {
      libdeflate_alloc_decompressor: { return: 'pointer', arguments: [] },
      // enum libdeflate_result libdeflate_deflate_decompress_ex(struct libdeflate_decompressor *,
      //   const void *in, size_t in_nbytes, void *out, size_t out_nbytes_avail,
      //   size_t *actual_in_nbytes_ret, size_t *actual_out_nbytes_ret)
      libdeflate_deflate_decompress_ex: { return: 'i32', arguments: ['pointer', 'pointer', 'u64', 'pointer', 'u64', 'pointer', 'pointer'] },
    } as const);
    const decompressor = (functions.libdeflate_alloc_decompressor as () => bigint)();
    if (!decompressor) return undefined;
    const decompress = functions.libdeflate_deflate_decompress_ex as (d: bigint, input: Uint8Array, inLen: bigint, out: Uint8Array, outLen: bigint, inRet: Uint8Array, outRet: Uint8Array) => number;
    // The two size_t results, read as 32-bit halves (a BigInt read would allocate per call).
    const sizes = new Uint32Array(4);
    const inRet = new Uint8Array(sizes.buffer, 0, 8);
    const outRet = new Uint8Array(sizes.buffer, 8, 8);
    // One result object, reused: this runs once per gzip member (~10k per layer, ~6 KB each), and
    // a fresh object per call was that much more garbage on the inflate worker.
    const done: WholeResult = { status: 'ok', consumed: 0, produced: 0 };
    const answer = (status: WholeResult['status'], consumed: number, produced: number): WholeResult => {
      done.status = status;
      done.consumed = consumed;
      done.produced = produced;
      return done;
    };
    const whole: WholeInflate = (input, at, out, outAt) => {
      const inLen = input.length - at;
      const outLen = out.length - outAt;
      if (inLen <= 0) return answer('fail', 0, 0);
      if (outLen <= 0) return answer('no-room', 0, 0);
      const result = decompress(decompressor, input.subarray(at), BigInt(inLen), out.subarray(outAt), BigInt(outLen), inRet, outRet);
      // LIBDEFLATE_SUCCESS 0, BAD_DATA 1, SHORT_OUTPUT 2, INSUFFICIENT_SPACE 3
      if (result === 0) return answer('ok', sizes[0]! + sizes[1]! * 2 ** 32, sizes[2]! + sizes[3]! * 2 ** 32);
      return answer(result === 3 ? 'no-room' : 'fail', 0, 0);
    };
    // A stream with a trailing byte, decoded into too little room and into enough.
    const text = Buffer.from('outrigger: libdeflate must decode what zlib encodes, '.repeat(50));
    const probe = Buffer.concat([zlib.deflateRawSync(text), Buffer.from([0x42])]);
    const room = Buffer.alloc(text.length + 8);
    if (whole(probe, 0, room, room.length - 100).status !== 'no-room') return undefined;
    const full = whole(probe, 0, room, 3);
    if (full.status !== 'ok' || full.consumed !== probe.length - 1 || full.produced !== text.length) return undefined;
    if (!room.subarray(3, 3 + text.length).equals(text)) return undefined;
    return whole;
  } catch {
    return undefined;
  }
}
