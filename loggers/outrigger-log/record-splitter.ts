/**
 * Cuts one output stream into log records the way containerd's CRI logger does
 * (pkg/cri/io/logger.go `redirectLogs`): a record ends at `\n` (a `\r` right before it is
 * dropped) and is "full"; a line longer than `maxLen` bytes is emitted in pieces of exactly
 * `maxLen` bytes marked "partial", then its rest as "full"; at end of stream an unfinished line
 * is one last partial record. Byte-exact with containerd for the same input, so CRI readers
 * (kubelet, fluent-bit) rebuild lines the same way.
 */
const NEWLINE = 0x0a;
const CR = 0x0d;

/** containerd's default max_container_log_line_size. */
export const CRI_MAX_LINE = 16 * 1024;

export interface LogRecord {
  readonly content: Buffer;
  readonly partial: boolean;
}

export class RecordSplitter {
  readonly maxLen: number;
  #held: Buffer = Buffer.alloc(0);

  constructor(maxLen = CRI_MAX_LINE) {
    if (!Number.isSafeInteger(maxLen) || maxLen < 1) throw new RangeError(`max line length must be ≥ 1, got ${maxLen}`);
    this.maxLen = maxLen;
  }

  push(chunk: Buffer, out: LogRecord[]): void {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE, start); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
      let line = this.#take(chunk.subarray(start, nl));
      if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      line = this.#cutPartials(line, line.length, out);
      out.push({ content: line, partial: false });
      start = nl + 1;
    }
    if (start < chunk.length) {
      const tail = this.#take(chunk.subarray(start));
      // A trailing \r may be the start of "\r\n": it does not count towards the limit yet.
      const counted = tail[tail.length - 1] === CR ? tail.length - 1 : tail.length;
      this.#held = Buffer.from(this.#cutPartials(tail, counted, out));
    }
  }

  /** End of stream: what is left is one partial record (containerd writes it with P). */
  end(out: LogRecord[]): void {
    const rest = this.#cutPartials(this.#held, this.#held.length, out);
    this.#held = Buffer.alloc(0);
    if (rest.length > 0) out.push({ content: rest, partial: true });
  }

  #take(piece: Buffer): Buffer {
    if (this.#held.length === 0) return piece;
    const joined = Buffer.concat([this.#held, piece]);
    this.#held = Buffer.alloc(0);
    return joined;
  }

  /** Emits maxLen-byte partials while more than maxLen counted bytes remain; returns the rest. */
  #cutPartials(line: Buffer, counted: number, out: LogRecord[]): Buffer {
    let rest = line;
    let restCounted = counted;
    while (restCounted > this.maxLen) {
      out.push({ content: rest.subarray(0, this.maxLen), partial: true });
      rest = rest.subarray(this.maxLen);
      restCounted -= this.maxLen;
    }
    return rest;
  }
}
