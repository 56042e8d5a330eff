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
 */
import zlib from 'node:zlib';

interface NativeHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
}

export class GzipFormatError extends Error {
  /** Compressed offset where the problem was found. */
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(`${message} (compressed offset ${offset})`);
    this.name = 'GzipFormatError';
    this.offset = offset;
  }
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

const FTEXT_MASK = 0xe0; // reserved FLG bits must be zero
const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;
const MAX_HEADER = 1 << 20;
/** Output buffer, reused for every step: no garbage, no fresh pages per chunk. */
const OUT_SIZE = 512 * 1024;

type State = 'header' | 'body' | 'trailer';

/** Parses a gzip member header; returns its length and FEXTRA, or undefined when more bytes are needed. */
function parseHeader(b: Buffer, offset: number): { length: number; extra: Buffer | undefined } | undefined {
  if (b.length < 10) return undefined;
  if (b[0] !== 0x1f || b[1] !== 0x8b) throw new GzipFormatError('not a gzip member (bad magic)', offset);
  if (b[2] !== 8) throw new GzipFormatError(`gzip compression method ${b[2]} is not deflate`, offset);
  const flg = b[3]!;
  if (flg & FTEXT_MASK) throw new GzipFormatError('gzip header has reserved flag bits set', offset);
  let pos = 10;
  let extra: Buffer | undefined;
  if (flg & FEXTRA) {
    if (b.length < pos + 2) return undefined;
    const xlen = b.readUInt16LE(pos);
    if (b.length < pos + 2 + xlen) return undefined;
    extra = Buffer.from(b.subarray(pos + 2, pos + 2 + xlen));
    pos += 2 + xlen;
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (flg & flag) {
      const end = b.indexOf(0, pos);
      if (end === -1) return undefined;
      pos = end + 1;
    }
  }
  if (flg & FHCRC) {
    if (b.length < pos + 2) return undefined;
    pos += 2;
  }
  return { length: pos, extra };
}

export class GzipMemberDecoder {
  private readonly sink: MemberSink;
  private readonly stream: zlib.InflateRaw;
  private readonly handle: NativeHandle;
  private state: State = 'header';
  private pending: Buffer = Buffer.alloc(0);
  /** Compressed bytes consumed so far (= offset of the next unread byte). */
  private position = 0;
  private memberOffset = 0;
  private memberOut = 0;
  private crc = 0;
  /** The inflater consumed all input without filling its output: it may have reached the end. */
  private maybeEnded = false;
  private readonly out = Buffer.allocUnsafe(OUT_SIZE);
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

  /** Feeds compressed bytes; synchronous, emits through the sink. */
  push(chunk: Buffer): void {
    let input = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    let at = 0;
    while (at < input.length) {
      if (this.state === 'header') {
        const rest = input.subarray(at);
        const header = parseHeader(rest, this.position);
        if (!header) {
          if (rest.length > MAX_HEADER) throw new GzipFormatError('gzip header too long', this.position);
          this.pending = Buffer.from(rest);
          return;
        }
        this.memberOffset = this.position;
        this.memberOut = 0;
        this.crc = 0;
        this.maybeEnded = false;
        this.stream.reset();
        this.sink.memberStart(this.memberOffset, header.extra);
        at += header.length;
        this.position += header.length;
        this.state = 'body';
      } else if (this.state === 'body') {
        const consumed = this.inflate(input, at, false);
        at += consumed;
        this.position += consumed;
      } else {
        const rest = input.length - at;
        if (rest < 8) {
          this.pending = Buffer.from(input.subarray(at));
          return;
        }
        this.checkTrailer(input, at);
        at += 8;
        this.position += 8;
        this.state = 'header';
        input = input.subarray(at);
        at = 0;
      }
    }
  }

  /** Runs the inflater on input[at..]; returns bytes consumed; switches to 'trailer' at the deflate end. */
  private inflate(input: Buffer, at: number, finish: boolean): number {
    let consumedTotal = 0;
    for (;;) {
      const inLen = input.length - at - consumedTotal;
      const room = this.out.length;
      this.handle.writeSync(finish ? zlib.constants.Z_FINISH : zlib.constants.Z_NO_FLUSH, input, at + consumedTotal, inLen, this.out, 0, room);
      const failure = this.stream.errored;
      if (failure) throw new GzipFormatError(`corrupt deflate data in gzip member at ${this.memberOffset}: ${(failure as Error).message}`, this.position + consumedTotal);
      const [availOut, availIn] = (this.stream as unknown as { _writeState: Uint32Array })._writeState as unknown as [number, number];
      const produced = room - availOut;
      const consumed = inLen - availIn;
      consumedTotal += consumed;
      if (produced > 0) {
        const chunk = this.out.subarray(0, produced);
        this.crc = zlib.crc32(chunk, this.crc);
        this.memberOut += produced;
        this.maybeEnded = false;
        this.sink.data(chunk);
      }
      if (availOut === 0) continue; // output full: more may come from the same input
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
    if (crc !== this.crc >>> 0) {
      throw new GzipFormatError(`gzip member at ${this.memberOffset}: CRC32 mismatch (trailer ${crc.toString(16)}, data ${(this.crc >>> 0).toString(16)})`, this.position);
    }
    if (isize !== this.memberOut % 2 ** 32) {
      throw new GzipFormatError(`gzip member at ${this.memberOffset}: length mismatch (trailer ${isize}, data ${this.memberOut})`, this.position);
    }
    this.sink.memberEnd(this.memberOffset, this.position + 8 - this.memberOffset, this.memberOut);
    this.members++;
  }

  /** End of input: the last member must be complete. */
  end(): void {
    if (this.state === 'body') {
      // The deflate stream may have ended exactly at the end of the input; Z_FINISH tells.
      this.inflate(Buffer.alloc(0), 0, true);
    }
    if (this.state === 'trailer') {
      if (this.pending.length < 8) throw new GzipFormatError(`gzip member at ${this.memberOffset} is truncated (no trailer)`, this.position);
    }
    if (this.state === 'header' && this.pending.length > 0) {
      throw new GzipFormatError(`trailing garbage or a truncated gzip header after the last member`, this.position);
    }
    if (this.members === 0) throw new GzipFormatError('empty input: no gzip member', 0);
    this.stream.destroy();
  }
}
