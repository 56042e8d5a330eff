/**
 * A multi-member gzip decoder that reports member boundaries.
 *
 * node:zlib's gunzip hides where one member ends and the next begins, and eStargz verification
 * needs exactly that (a chunk starts a member; the TOC's `offset` is a member's compressed
 * offset). So we parse gzip headers and trailers ourselves (RFC 1952) and inflate each member's
 * raw deflate data with node:zlib's native handle, driven synchronously into buffers we own (the
 * same `writeSync` / `_writeState` internals node:zlib's own sync functions use; Node is pinned
 * and test/estargz-*.test.ts covers every path). The CRC32 and ISIZE of every member are checked,
 * as gunzip does.
 *
 * The code lives in one self-contained function, `defineGzipMembers(zlib)`, that refers to
 * nothing outside itself: the unpack's inflate worker (inflate-worker.ts) runs the very same
 * source (`defineGzipMembers.toString()`; a worker of the single-executable binary has no module
 * files to load), while this module instantiates it for the calling thread.
 */
import zlib from 'node:zlib';

interface NativeHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
}

export interface MemberSink {
  /** A member's header was parsed; its data follows. `extra` is the FEXTRA field, if any. */
  memberStart(compressedOffset: number, extra: Buffer | undefined): void;
  /**
   * Decompressed bytes, in order. The chunk's memory is reused by the decoder once this returns:
   * copy what you keep.
   */
  data(chunk: Buffer): void;
  /** The member's trailer checked out. */
  memberEnd(compressedOffset: number, compressedLength: number, uncompressedLength: number): void;
}

/**
 * Where the decoder inflates to when the caller owns the output (useOutput): `buffer[fill..]`,
 * advancing `fill`. The caller swaps in another buffer when it runs full, so decoded bytes are
 * written from where they were inflated, with no copy and no per-step garbage.
 */
export interface OutputSpace {
  buffer: Buffer;
  fill: number;
}

/**
 * Inflates one complete raw deflate stream from input[at..] into out[outAt..] at once
 * (libdeflate.ts): 'ok' with what it consumed and produced, or 'no-room' / 'fail', after which
 * the decoder streams that member through zlib instead (which then has the last word). The
 * result may be reused by the next call.
 */
export type WholeMemberInflate = (input: Buffer, at: number, out: Buffer, outAt: number) => { status: 'ok' | 'no-room' | 'fail'; consumed: number; produced: number };

/**
 * The decoder's classes, built from `zlib` and a CRC32 function (zlib's unless given; the
 * inflate worker passes libdeflate.ts's). Self-contained: also evaluated from its source text in
 * a worker.
 */
export function defineGzipMembers(zlib: typeof import('node:zlib'), crc32: (data: Uint8Array, value: number) => number = zlib.crc32) {

  class GzipFormatError extends Error {
    /** Compressed offset where the problem was found. */
    readonly offset: number;
    constructor(message: string, offset: number) {
      super(`${message} (compressed offset ${offset})`);
      this.name = 'GzipFormatError';
      this.offset = offset;
    }
  }

  /** The message of a CRC mismatch, wherever it is found. */
  function crcMismatch(memberOffset: number, trailerOffset: number, expected: number, actual: number): GzipFormatError {
    return new GzipFormatError(`gzip member at ${memberOffset}: CRC32 mismatch (trailer ${(expected >>> 0).toString(16)}, data ${(actual >>> 0).toString(16)})`, trailerOffset);
  }

  const FTEXT_MASK = 0xe0; // reserved FLG bits must be zero
  const FHCRC = 2;
  const FEXTRA = 4;
  const FNAME = 8;
  const FCOMMENT = 16;
  const MAX_HEADER = 1 << 20;
  /** Output buffer, reused for every step: no garbage, no fresh pages per chunk. */
  const OUT_SIZE = 512 * 1024;

  type State = 'header' | 'body' | 'trailer';

  const EMPTY = Buffer.alloc(0);

  /**
   * Parses the gzip member header at b[at..]: returns its length, or 0 when more bytes are needed
   * (a header is at least 10). Its FEXTRA, if any, is left in `headerExtra`. (No result object
   * and no view of the rest of the input per member: this runs for each of a layer's ~10k.)
   */
  let headerExtra: Buffer | undefined;
  function parseHeader(b: Buffer, at: number, offset: number): number {
    const end = b.length;
    headerExtra = undefined;
    if (end - at < 10) return 0;
    if (b[at] !== 0x1f || b[at + 1] !== 0x8b) throw new GzipFormatError('not a gzip member (bad magic)', offset);
    if (b[at + 2] !== 8) throw new GzipFormatError(`gzip compression method ${b[at + 2]} is not deflate`, offset);
    const flg = b[at + 3]!;
    if (flg & FTEXT_MASK) throw new GzipFormatError('gzip header has reserved flag bits set', offset);
    let pos = at + 10;
    if (flg & FEXTRA) {
      if (end < pos + 2) return 0;
      const xlen = b.readUInt16LE(pos);
      if (end < pos + 2 + xlen) return 0;
      headerExtra = Buffer.from(b.subarray(pos + 2, pos + 2 + xlen));
      pos += 2 + xlen;
    }
    if (flg & FNAME) {
      const zero = b.indexOf(0, pos);
      if (zero === -1) return 0;
      pos = zero + 1;
    }
    if (flg & FCOMMENT) {
      const zero = b.indexOf(0, pos);
      if (zero === -1) return 0;
      pos = zero + 1;
    }
    if (flg & FHCRC) {
      if (end < pos + 2) return 0;
      pos += 2;
    }
    return pos - at;
  }

  class GzipMemberDecoder {
    private readonly sink: MemberSink;
    private readonly stream: zlib.InflateRaw;
    private readonly handle: NativeHandle;
    private state: State = 'header';
    private pending: Buffer = EMPTY;
    /** Compressed bytes consumed so far (= offset of the next unread byte). */
    private position = 0;
    private memberOffset = 0;
    private memberOut = 0;
    private crc = 0;
    /** Who checks the current member's CRC (undefined: we do), and who checks from the next one. */
    /** The inflater consumed all input without filling its output: it may have reached the end. */
    private maybeEnded = false;
    /** See useWholeInflate. */
    private whole: WholeMemberInflate | undefined;
    private wholeRoom = 0;
    private wholeInput = 0;
    /** No more input after what push() gets now (lastInput). */
    private final = false;
    /** The current member streams through zlib (the whole inflate did not finish it). */
    private streamMember = false;
    /** zlib's inflate state was reset for the current member. */
    private streamReset = false;
    private roomAsked = false;
    /** Input that a whole inflate of the current member was tried with early on (see push). */
    private earlyTried = 0;
    /**
     * Why push() returned before consuming everything: true when it wants more input before the
     * next member body (push the rest again with more appended), false when the output ran full.
     */
    wantsInput = false;
    /** Our own reused buffer, unless the caller supplies the output (useOutput). */
    private space: OutputSpace = { buffer: Buffer.allocUnsafe(OUT_SIZE), fill: 0 };
    private external = false;
    members = 0;

    constructor(sink: MemberSink) {
      this.sink = sink;
      this.stream = zlib.createInflateRaw();
      this.stream.on('error', () => {});
      this.handle = (this.stream as unknown as { _handle: NativeHandle })._handle;
    }

    get compressedBytes(): number {
      return this.position;
    }

    /**
     * From now on inflate into `space` (shared with the caller, who swaps `space.buffer` when it is
     * full). push() and end() then stop early when the space runs out.
     */
    useOutput(space: OutputSpace): void {
      this.space = space;
      this.external = true;
    }

    /**
     * With a caller-supplied output: try `whole` on each member body first, given at least `room`
     * bytes of output room (else push() returns early for a fresh buffer, as when full) and at
     * least `input` bytes of input after the body start (else push() returns early with
     * wantsInput, unless lastInput() was called). A member it does not finish streams as usual.
     */
    useWholeInflate(whole: WholeMemberInflate, room: number, input: number): void {
      this.whole = whole;
      this.wholeRoom = room;
      this.wholeInput = input;
    }

    /** What push() gets from now on is the end of the input. */
    lastInput(): void {
      this.final = true;
    }

    /**
     * Feeds compressed bytes; synchronous, emits through the sink. Returns how many bytes of
     * `chunk` were consumed: all of them, unless a caller-supplied output space ran full first
     * (then swap in room and push the rest).
     */
    push(chunk: Buffer): number {
      const pendingBytes = this.pending.length;
      const startPosition = this.position;
      this.wantsInput = false;
      const input = pendingBytes > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
      if (pendingBytes > 0) this.pending = EMPTY;
      let at = 0;
      while (at < input.length) {
        if (this.state === 'header') {
          const headerLength = parseHeader(input, at, this.position);
          if (headerLength === 0) {
            if (input.length - at > MAX_HEADER) throw new GzipFormatError('gzip header too long', this.position);
            this.pending = Buffer.from(input.subarray(at));
            return chunk.length;
          }
          this.memberOffset = this.position;
          this.memberOut = 0;
          this.crc = 0;
          this.maybeEnded = false;
          // zlib's state is reset when a member is streamed (inflate), not for each member.
          this.streamReset = false;
          this.sink.memberStart(this.memberOffset, headerExtra);
          this.streamMember = false;
          this.roomAsked = false;
          this.earlyTried = 0;
          at += headerLength;
          this.position += headerLength;
          this.state = 'body';
        } else if (this.state === 'body') {
          if (this.whole && this.external && !this.streamMember && this.memberOut === 0) {
            const space = this.space;
            if (space.buffer.length - space.fill < this.wholeRoom && !this.roomAsked) {
              // Too little room for a whole chunk: ask for a fresh buffer first (as when full).
              this.roomAsked = true;
              return this.position - startPosition - pendingBytes;
            }
            // Less input than a whole chunk can take: wait for more, except at the start of the
            // stream, where the first members are usually small and waiting would hold back the
            // first output until megabytes of input have arrived. There each new amount of
            // input is tried once, and a member it does not hold waits as usual.
            const available = input.length - at;
            const early = !this.final && available < this.wholeInput;
            if (early && !(this.position < this.wholeInput && available > this.earlyTried)) {
              this.wantsInput = true;
              return this.position - startPosition - pendingBytes;
            }
            if (early) this.earlyTried = available;
            const r = this.whole(input, at, space.buffer, space.fill);
            if (r.status === 'ok') {
              const chunk = space.buffer.subarray(space.fill, space.fill + r.produced);
              space.fill += r.produced;
              this.crc = crc32(chunk, this.crc);
              this.memberOut += r.produced;
              if (r.produced > 0) this.sink.data(chunk);
              at += r.consumed;
              this.position += r.consumed;
              this.state = 'trailer';
              continue;
            }
            if (early && r.status === 'fail') {
              // Cut short (or bad): more input decides.
              this.wantsInput = true;
              return this.position - startPosition - pendingBytes;
            }
            // Larger than the room (more input cannot change that), cut short, or bad: zlib
            // streams it (and judges it).
            this.streamMember = true;
          }
          const consumed = this.inflate(input, at, false);
          at += consumed;
          this.position += consumed;
          // Output full mid-member: the rest waits for room. (A body starts after any pending
          // header bytes, so what was consumed lies in `chunk`.)
          if (this.state === 'body' && this.external && this.space.fill === this.space.buffer.length) {
            return this.position - startPosition - pendingBytes;
          }
        } else {
          const rest = input.length - at;
          if (rest < 8) {
            this.pending = Buffer.from(input.subarray(at));
            return chunk.length;
          }
          this.checkTrailer(input, at);
          at += 8;
          this.position += 8;
          this.state = 'header';
        }
      }
      return chunk.length;
    }

    /**
     * Runs the inflater on input[at..]; returns bytes consumed; switches to 'trailer' at the deflate
     * end. With a caller-supplied output it returns when the output is full.
     */
    private inflate(input: Buffer, at: number, finish: boolean): number {
      if (!this.streamReset) {
        this.stream.reset();
        this.streamReset = true;
      }
      let consumedTotal = 0;
      const space = this.space;
      for (;;) {
        if (!this.external) space.fill = 0;
        const inLen = input.length - at - consumedTotal;
        const out = space.buffer;
        const start = space.fill;
        const room = out.length - start;
        this.handle.writeSync(finish ? zlib.constants.Z_FINISH : zlib.constants.Z_NO_FLUSH, input, at + consumedTotal, inLen, out, start, room);
        const failure = this.stream.errored;
        if (failure) throw new GzipFormatError(`corrupt deflate data in gzip member at ${this.memberOffset}: ${(failure as Error).message}`, this.position + consumedTotal);
        const state = (this.stream as unknown as { _writeState: Uint32Array })._writeState;
        const availOut = state[0]!;
        const availIn = state[1]!;
        const produced = room - availOut;
        const consumed = inLen - availIn;
        consumedTotal += consumed;
        if (produced > 0) {
          const chunk = out.subarray(start, start + produced);
          space.fill = start + produced;
          this.crc = crc32(chunk, this.crc);
          this.memberOut += produced;
          this.maybeEnded = false;
          this.sink.data(chunk);
        }
        if (availOut === 0) {
          // Output full: more may come from the same input.
          if (this.external) return consumedTotal;
          continue;
        }
        if (availIn > 0 || (this.maybeEnded && consumed === 0) || finish) {
          // Room left and input left over (or nothing taken after a suspected end): the deflate
          // stream ended. With `finish`, zlib has already failed unless the stream was complete.
          this.state = 'trailer';
          this.maybeEnded = false;
          return consumedTotal;
        }
        this.maybeEnded = consumed > 0 || this.maybeEnded;
        return consumedTotal;
      }
    }

    private checkTrailer(b: Buffer, at: number): void {
      const crc = b.readUInt32LE(at);
      const isize = b.readUInt32LE(at + 4);
      if (crc !== this.crc >>> 0) throw crcMismatch(this.memberOffset, this.position, crc, this.crc);
      if (isize !== this.memberOut % 2 ** 32) {
        throw new GzipFormatError(`gzip member at ${this.memberOffset}: length mismatch (trailer ${isize}, data ${this.memberOut})`, this.position);
      }
      this.sink.memberEnd(this.memberOffset, this.position + 8 - this.memberOffset, this.memberOut);
      this.members++;
    }

    /**
     * End of input: the last member must be complete. Returns false when a caller-supplied output
     * ran full first (swap in room and call again).
     */
    end(): boolean {
      if (this.state === 'body') {
        // The deflate stream may have ended exactly at the end of the input; Z_FINISH tells.
        this.inflate(EMPTY, 0, true);
        if (this.state === 'body') return false;
      }
      if (this.state === 'trailer') {
        if (this.pending.length < 8) throw new GzipFormatError(`gzip member at ${this.memberOffset} is truncated (no trailer)`, this.position);
      }
      if (this.state === 'header' && this.pending.length > 0) {
        throw new GzipFormatError(`trailing garbage or a truncated gzip header after the last member`, this.position);
      }
      if (this.members === 0) throw new GzipFormatError('empty input: no gzip member', 0);
      this.stream.destroy();
      return true;
    }
  }

  return { GzipFormatError, GzipMemberDecoder };
}

const members = defineGzipMembers(zlib);
export const GzipFormatError = members.GzipFormatError;
export type GzipFormatError = InstanceType<typeof GzipFormatError>;
export const GzipMemberDecoder = members.GzipMemberDecoder;
export type GzipMemberDecoder = InstanceType<typeof GzipMemberDecoder>;
