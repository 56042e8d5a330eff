/**
 * Incremental ttrpc frame decoder: feed it socket chunks as they come, in any split, and it
 * yields whole frames. Its memory is bounded by the max-bytes limit: a frame that declares more
 * is skipped byte by byte without buffering and reported so the caller can answer it the way Go
 * does (ResourceExhausted on that stream, connection kept). A header whose reserved high length
 * byte is set cannot come from a ttrpc peer and raises FrameProtocolError: the caller drops the
 * connection rather than swallow up to 4 GiB of garbage.
 */
import { decodeHeader, HEADER_SIZE, MAX_MESSAGE_SIZE, RESERVED_LENGTH_LIMIT } from './frame.ts';
import type { Frame, FrameHeader } from './frame.ts';

export type DecodedItem =
  | { readonly kind: 'frame'; readonly frame: Frame }
  /** A frame longer than the limit; its data has been read and thrown away. */
  | { readonly kind: 'oversized'; readonly header: FrameHeader };

export class FrameProtocolError extends Error {
  /** Byte offset of the offending header in the connection's input. */
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.name = 'FrameProtocolError';
    this.offset = offset;
  }
}

export class FrameDecoder {
  readonly #maxPayload: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  /** Bytes consumed from the input so far, for error offsets. */
  #consumed = 0;
  #header: FrameHeader | undefined;
  /** Bytes still to skip of an oversized frame. */
  #discarding = 0;
  #failed = false;

  constructor(maxPayload: number = MAX_MESSAGE_SIZE) {
    if (!Number.isInteger(maxPayload) || maxPayload < 0 || maxPayload >= RESERVED_LENGTH_LIMIT) {
      throw new RangeError(`ttrpc decoder: max payload ${maxPayload} must be an integer in [0, 16 MiB)`);
    }
    this.#maxPayload = maxPayload;
  }

  /** Bytes held waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** True between frames: nothing partial is buffered or being skipped. */
  get idle(): boolean {
    return this.#buffered === 0 && this.#header === undefined && this.#discarding === 0;
  }

  push(chunk: Uint8Array): DecodedItem[] {
    if (this.#failed) throw new Error('ttrpc decoder: used after a protocol error');
    const items: DecodedItem[] = [];
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    for (;;) {
      if (this.#discarding > 0) {
        const n = Math.min(this.#discarding, this.#buffered);
        this.#skip(n);
        this.#discarding -= n;
        if (this.#discarding > 0) return items;
        items.push({ kind: 'oversized', header: this.#header! });
        this.#header = undefined;
        continue;
      }
      if (this.#header === undefined) {
        if (this.#buffered < HEADER_SIZE) return items;
        const offset = this.#consumed;
        const header = decodeHeader(this.#take(HEADER_SIZE));
        if (header.length >= RESERVED_LENGTH_LIMIT) {
          this.#failed = true;
          throw new FrameProtocolError(
            `ttrpc frame header at byte ${offset} declares ${header.length} bytes of data; ` +
              `the reserved high length byte is set, so this is not a ttrpc stream`,
            offset,
          );
        }
        this.#header = header;
        if (header.length > this.#maxPayload) {
          this.#discarding = header.length;
          continue;
        }
      }
      const header = this.#header;
      if (this.#buffered < header.length) return items;
      const payload = this.#take(header.length);
      this.#header = undefined;
      items.push({ kind: 'frame', frame: { streamId: header.streamId, type: header.type, flags: header.flags, payload } });
    }
  }

  /** Removes n buffered bytes and returns them, without copying when they sit in one chunk. */
  #take(n: number): Uint8Array {
    this.#buffered -= n;
    this.#consumed += n;
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const head = this.#chunks[0]!;
      const want = n - filled;
      if (head.length <= want) {
        out.set(head, filled);
        filled += head.length;
        this.#chunks.shift();
      } else {
        out.set(head.subarray(0, want), filled);
        this.#chunks[0] = head.subarray(want);
        filled = n;
      }
    }
    return out;
  }

  #skip(n: number): void {
    this.#buffered -= n;
    this.#consumed += n;
    let left = n;
    while (left > 0) {
      const head = this.#chunks[0]!;
      if (head.length <= left) {
        left -= head.length;
        this.#chunks.shift();
      } else {
        this.#chunks[0] = head.subarray(left);
        left = 0;
      }
    }
  }
}
