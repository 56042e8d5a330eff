/**
 * Per-stream line assembly in front of a rotating file: passes on output up to its last
 * newline and holds the unfinished tail, so stdout and stderr lines are never interleaved
 * mid-line and a rotation never falls inside a line. The tail is bounded: once it reaches
 * `limit` bytes (a line longer than any file, or a stream that never writes a newline) it is
 * passed on as it is. What is held is passed on at end of stream or close.
 */
const NEWLINE = 0x0a;

export class LineHolder {
  readonly limit: number;
  #held: Buffer[] = [];
  #heldBytes = 0;

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`line limit must be ≥ 1, got ${limit}`);
    this.limit = limit;
  }

  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** What can be written now (possibly nothing). */
  push(chunk: Buffer): Buffer | undefined {
    if (chunk.length === 0) return undefined;
    const nl = chunk.lastIndexOf(NEWLINE);
    if (nl < 0) {
      this.#held.push(chunk);
      this.#heldBytes += chunk.length;
      return this.#heldBytes >= this.limit ? this.flush() : undefined;
    }
    const ready = this.#heldBytes === 0 ? chunk.subarray(0, nl + 1) : Buffer.concat([...this.#held, chunk.subarray(0, nl + 1)]);
    this.#held = [];
    this.#heldBytes = 0;
    if (nl + 1 < chunk.length) {
      const tail = chunk.subarray(nl + 1);
      this.#held.push(tail);
      this.#heldBytes = tail.length;
      // `ready` can be written first: the tail is a new line of its own.
      if (this.#heldBytes >= this.limit) return Buffer.concat([ready, this.flush()!]);
    }
    return ready;
  }

  /** The held tail, if any; the holder is empty afterwards. */
  flush(): Buffer | undefined {
    if (this.#heldBytes === 0) return undefined;
    const out = this.#held.length === 1 ? this.#held[0]! : Buffer.concat(this.#held);
    this.#held = [];
    this.#heldBytes = 0;
    return out;
  }
}
