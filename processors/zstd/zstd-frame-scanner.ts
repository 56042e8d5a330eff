/**
 * Follows the frame and block structure of a zstd stream (RFC 8878 §3.1) without decoding it,
 * alongside the real decoder. The decoder (node:zlib) reports corruption but not where, stops
 * silently at bytes that are not a frame, and says only "unexpected end of file" on truncation;
 * the scanner turns each of those into an exact byte offset and a reason, and checks a frame's
 * window against the memory limit before the decoder allocates it. It reads only headers
 * (3 bytes per ≤128 KiB block), so it costs nothing measurable.
 */

export const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const MAX_BLOCK_SIZE = 128 * 1024;

export class ZstdStructureError extends Error {
  /** Offset in the compressed input where the problem is. */
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.name = 'ZstdStructureError';
    this.offset = offset;
  }
}

export interface FrameInfo {
  readonly kind: 'zstd' | 'skippable';
  /** Offset of the frame's magic number in the input. */
  readonly offset: number;
  /** Window the decoder needs (zstd frames only). */
  readonly windowSize?: number;
  readonly contentSize?: bigint;
  readonly hasChecksum?: boolean;
  /** Length of a skippable frame's payload, which follows its 8-byte header. */
  readonly size?: number;
}

type State =
  | { readonly at: 'magic' }
  | { readonly at: 'skippable-size'; readonly frame: number }
  | { readonly at: 'frame-header'; readonly frame: number }
  | { readonly at: 'block-header'; readonly frame: number; readonly checksum: boolean; readonly blocks: number; readonly blockLimit: number }
  | { readonly at: 'skip'; readonly frame: number; readonly what: string; readonly then: State }
  | { readonly at: 'checksum'; readonly frame: number };

export interface ScannerOptions {
  /** Largest window accepted, in bytes (the zstd CLI's default limit is 2^27 = 128 MiB). */
  readonly maxWindowSize: number;
  readonly onFrame?: (frame: FrameInfo) => void;
}

function describeWindow(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return mib >= 1 ? `${mib} MiB` : `${bytes / 1024} KiB`;
}

export class ZstdFrameScanner {
  private readonly options: ScannerOptions;
  private state: State = { at: 'magic' };
  /** Offset of the next byte the scanner will look at. */
  private position = 0;
  /** Bytes still to skip in a 'skip' state. */
  private remaining = 0;
  /** Header bytes collected so far when a header spans chunks. */
  private header: number[] = [];
  private zstdFrames = 0;
  private skippableFrames = 0;

  constructor(options: ScannerOptions) {
    this.options = options;
  }

  get frames(): { readonly zstd: number; readonly skippable: number } {
    return { zstd: this.zstdFrames, skippable: this.skippableFrames };
  }

  /** Feeds the next chunk of input; throws ZstdStructureError at the first malformed byte. */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      const state = this.state;
      if (state.at === 'skip') {
        const n = Math.min(this.remaining, chunk.length - i);
        i += n;
        this.position += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = state.then;
        continue;
      }
      // A frame header's length is known only after its first byte, so re-ask after each byte.
      let need = this.headerLength(state);
      while (this.header.length < need && i < chunk.length) {
        this.header.push(chunk[i]!);
        i += 1;
        need = this.headerLength(state);
      }
      if (this.header.length < need) return;
      const bytes = this.header;
      this.header = [];
      const start = this.position;
      this.position += bytes.length;
      this.advance(state, bytes, start);
    }
  }

  /** Call at end of input: throws if the input stopped inside a frame or held no frame at all. */
  finish(): void {
    const s = this.state;
    if (s.at === 'magic' && this.header.length === 0) {
      if (this.zstdFrames + this.skippableFrames === 0) {
        throw new ZstdStructureError('input is empty: no zstd frame', 0);
      }
      return;
    }
    const end = this.position + this.header.length;
    throw new ZstdStructureError(`input truncated at byte ${end}: it ends inside ${this.where(s)}`, end);
  }

  private where(s: State): string {
    switch (s.at) {
      case 'magic':
        return 'the magic number of a frame';
      case 'skippable-size':
        return `the header of skippable frame at byte ${s.frame}`;
      case 'frame-header':
        return `the header of the frame at byte ${s.frame}`;
      case 'block-header':
        return `a block header of the frame at byte ${s.frame}`;
      case 'checksum':
        return `the checksum of the frame at byte ${s.frame}`;
      case 'skip':
        return `${s.what} (${this.remaining} bytes missing)`;
    }
  }

  private headerLength(s: State): number {
    switch (s.at) {
      case 'magic':
      case 'skippable-size':
      case 'checksum':
        return 4;
      case 'block-header':
        return 3;
      case 'frame-header': {
        // The descriptor decides how long the rest of the header is.
        if (this.header.length === 0) return 1;
        const fhd = this.header[0]!;
        const singleSegment = (fhd >> 5) & 1;
        const fcsFlag = fhd >> 6;
        const dictBytes = [0, 1, 2, 4][fhd & 3]!;
        const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
        return 1 + (singleSegment ? 0 : 1) + dictBytes + fcsBytes;
      }
      case 'skip':
        return 0;
    }
  }

  private skip(length: number, what: string, frame: number, then: State): void {
    if (length === 0) {
      this.state = then;
      return;
    }
    this.remaining = length;
    this.state = { at: 'skip', frame, what, then };
  }

  private advance(s: State, b: number[], start: number): void {
    switch (s.at) {
      case 'magic': {
        const magic = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
        if (magic === ZSTD_MAGIC) {
          this.state = { at: 'frame-header', frame: start };
        } else if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
          this.state = { at: 'skippable-size', frame: start };
        } else {
          const hex = b.map((x) => x.toString(16).padStart(2, '0')).join(' ');
          const after = this.zstdFrames + this.skippableFrames;
          throw new ZstdStructureError(
            after === 0
              ? `not zstd data: input starts with bytes ${hex}, not a zstd frame magic number`
              : `trailing garbage at byte ${start} after ${after} frame(s): bytes ${hex} are not a zstd frame magic number`,
            start,
          );
        }
        return;
      }
      case 'skippable-size': {
        const size = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
        this.skippableFrames += 1;
        this.options.onFrame?.({ kind: 'skippable', offset: s.frame, size });
        this.skip(size, `the ${size}-byte body of the skippable frame at byte ${s.frame}`, s.frame, { at: 'magic' });
        return;
      }
      case 'frame-header': {
        const fhd = b[0]!;
        if (fhd & 0x08) throw new ZstdStructureError(`corrupt frame header at byte ${start}: reserved bit set in the frame header descriptor`, start);
        const singleSegment = ((fhd >> 5) & 1) === 1;
        const checksum = ((fhd >> 2) & 1) === 1;
        const dictBytes = [0, 1, 2, 4][fhd & 3]!;
        let p = 1;
        let windowSize = 0;
        if (!singleSegment) {
          const wd = b[p]!;
          p += 1;
          const windowLog = 10 + (wd >> 3);
          const base = 2 ** windowLog;
          windowSize = base + (base / 8) * (wd & 7);
        }
        p += dictBytes;
        let contentSize: bigint | undefined;
        const fcsLength = b.length - p;
        if (fcsLength > 0) {
          let v = 0n;
          for (let k = fcsLength - 1; k >= 0; k -= 1) v = (v << 8n) | BigInt(b[p + k]!);
          // A 2-byte field stores size - 256 (RFC 8878 §3.1.1.1.4).
          contentSize = fcsLength === 2 ? v + 256n : v;
        }
        if (singleSegment) windowSize = Number(contentSize ?? 0n);
        const limit = this.options.maxWindowSize;
        if (windowSize > limit) {
          const needLog = Math.ceil(Math.log2(windowSize));
          throw new ZstdStructureError(
            `frame at byte ${s.frame} needs a ${describeWindow(windowSize)} window, above the limit of ${describeWindow(limit)}; ` +
              `if the source is trusted, raise the limit with --long=${needLog} or --memory=${Math.ceil(windowSize / (1024 * 1024))}MiB`,
            s.frame,
          );
        }
        this.zstdFrames += 1;
        this.options.onFrame?.({ kind: 'zstd', offset: s.frame, windowSize, contentSize, hasChecksum: checksum });
        const blockLimit = windowSize > 0 ? Math.min(windowSize, MAX_BLOCK_SIZE) : MAX_BLOCK_SIZE;
        this.state = { at: 'block-header', frame: s.frame, checksum, blocks: 0, blockLimit };
        return;
      }
      case 'block-header': {
        const h = b[0]! | (b[1]! << 8) | (b[2]! << 16);
        const last = (h & 1) === 1;
        const type = (h >> 1) & 3;
        const size = h >>> 3;
        if (type === 3) throw new ZstdStructureError(`corrupt block header at byte ${start} (frame at byte ${s.frame}): reserved block type`, start);
        if (size > s.blockLimit && type !== 1) {
          throw new ZstdStructureError(`corrupt block header at byte ${start} (frame at byte ${s.frame}): block size ${size} exceeds ${s.blockLimit}`, start);
        }
        const next: State = last
          ? s.checksum
            ? { at: 'checksum', frame: s.frame }
            : { at: 'magic' }
          : { ...s, blocks: s.blocks + 1 };
        // An RLE block stores one byte whatever its regenerated size.
        const body = type === 1 ? 1 : size;
        this.skip(body, `block ${s.blocks} (${body} bytes from byte ${start + 3}) of the frame at byte ${s.frame}`, s.frame, next);
        return;
      }
      case 'checksum':
        this.state = { at: 'magic' };
        return;
      case 'skip':
        return;
    }
  }
}
