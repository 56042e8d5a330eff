/**
 * The verifying unpack: gzip layer bytes in, exactly gunzip(layer) out.
 *
 * The bulk streams straight through. What eStargz verification needs is gathered on the way
 * (gzip member boundaries, per-file and per-chunk sha256, the `stargz.index.json` content) and
 * judged at the end of the input, when the footer tells whether the layer is eStargz. Only the
 * last TAIL_HOLD bytes of output (the tar's end-of-archive marker) are held back until then, so
 * the output is never complete unless verification passed; containerd's diff_id check then
 * fails on any cut stream even if it misses our exit status.
 */
import { type Digests, SyncDigests } from './digests.ts';
import { GzipFormatError, GzipMemberDecoder, type OutputSpace } from './gzip-members.ts';
import { type FilledRange, InflateWorkerError } from './inflate-worker.ts';
import { MIN_ROOM, TAIL_HOLD, takeInflateWorker } from './unpack-prestart.ts';
import { readTocAhead, type TocAhead } from './toc-ahead.ts';
import { type Footer, parseFooter } from './footer.ts';
import { TarWalker } from './tar-walker.ts';
import { parseToc, sha256Digest, TOC_NAME_BYTES, TocError } from './toc.ts';
import { TocVerifier, VerifyError, type VerifySummary } from './verify-toc.ts';

export { TAIL_HOLD } from './unpack-prestart.ts';

export interface UnpackOptions {
  /** Require an eStargz layer whose TOC JSON has this digest. */
  tocDigest?: string;
  /**
   * Where file and chunk sha256 are computed. Given: everything runs on the calling thread (the
   * gzip decoder too), hashing through `digests` (SyncDigests here, or digests.ts's worker).
   * Absent (the processor): gzip members are inflated on a worker (inflate-worker.ts) and the tar
   * walk and sha256 run on this thread, reading the worker's output buffers in place.
   */
  digests?: Digests;
  /**
   * The rest of the input after `source` ends, read straight into the unpack's own buffers (the
   * inflate worker's input slots; io.ts Input.readInto): fills the buffer it is given unless the
   * input ends, 0 at the end.
   */
  readInto?: (buffer: Buffer) => Promise<number>;
}

export interface UnpackResult {
  format: 'gzip' | 'estargz' | 'legacy-stargz' | 'zstd' | 'zstd:chunked';
  inputBytes: number;
  outputBytes: number;
  members: number;
  tocDigest?: string;
  verified?: VerifySummary;
}

export class UnpackError extends Error {
  /** Compressed offset the failure is tied to, or -1. */
  readonly offset: number;
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UnpackError';
    this.offset = offset;
  }
}

/**
 * Output buffer size: the decoder inflates straight into these and they are written from there.
 * Each swap posts one batch of records to the hashing worker (a thread wake-up), so 2 MiB halves
 * those against 1 MiB; 1 MiB x 6 and 2 MiB x 4 measured the same on the 194 MB bench layer.
 */
const STAGE_BYTES = 2 << 20;
/** Buffers in the pool: one being filled, the others being written. */
const STAGE_BUFFERS = 4;

/**
 * The output side: the decoder inflates into `space` (a pooled 2 MiB buffer from
 * `digests.allocate`, which the hashing worker reads in place); when it is full,
 * all of it but the newest TAIL_HOLD bytes is written and those bytes move to the start of the
 * next buffer. So output leaves in large writes straight from where it was inflated, the held
 * tail costs a 1 KiB copy per MiB, and a pending write keeps its buffer out of the pool until
 * `write`'s promise settles and the hashing worker has read it (that is the backpressure).
 */
class StagedOutput {
  readonly space: OutputSpace;
  /** Bytes handed to `write`. */
  written = 0;
  private readonly free: Buffer[] = [];
  private allocated = 1;
  private readonly pending = new Set<Promise<void>>();
  private failure: unknown;
  private readonly write: (chunk: Buffer) => void | Promise<void>;
  private readonly digests: Digests;

  constructor(write: (chunk: Buffer) => void | Promise<void>, digests: Digests) {
    this.write = write;
    this.digests = digests;
    this.space = { buffer: digests.allocate(STAGE_BYTES), fill: 0 };
  }

  get roomLow(): boolean {
    return this.space.buffer.length - this.space.fill < MIN_ROOM;
  }

  private emit(buffer: Buffer, length: number): void {
    this.written += length;
    const written = length > 0 ? this.write(buffer.subarray(0, length)) : undefined;
    const hashed = this.digests.checkpoint();
    if (!(written instanceof Promise) && hashed === undefined) {
      this.free.push(buffer);
      return;
    }
    const wait = written instanceof Promise && hashed ? Promise.all([written, hashed]) : (hashed ?? (written as Promise<void>));
    const tracked: Promise<void> = wait.then(
      () => {
        this.pending.delete(tracked);
        this.free.push(buffer);
      },
      (err: unknown) => {
        this.pending.delete(tracked);
        this.failure ??= err;
      },
    );
    this.pending.add(tracked);
  }

  private async freeBuffer(): Promise<Buffer> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const buffer = this.free.pop();
      if (buffer) return buffer;
      if (this.allocated < STAGE_BUFFERS) {
        this.allocated++;
        return this.digests.allocate(STAGE_BYTES);
      }
      await Promise.race(this.pending);
    }
  }

  /** Writes everything but the newest TAIL_HOLD bytes; the decoder continues in a fresh buffer. */
  async rotate(): Promise<void> {
    const { buffer, fill } = this.space;
    if (fill <= TAIL_HOLD) return;
    const next = await this.freeBuffer();
    buffer.copy(next, 0, fill - TAIL_HOLD, fill);
    this.space.buffer = next;
    this.space.fill = TAIL_HOLD;
    this.emit(buffer, fill - TAIL_HOLD);
  }

  /** The layer passed: writes the held bytes and waits for every write. */
  async release(): Promise<void> {
    const { buffer, fill } = this.space;
    this.space.fill = 0;
    this.emit(buffer, fill);
    await this.settle();
  }

  /** Waits for the writes in flight (after a failure too: the caller's sink may still own buffers). */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.race(this.pending);
    if (this.failure !== undefined) throw this.failure;
  }
}

/** Keeps the newest compressed bytes, enough to read a footer. */
class InputTail {
  private buf = Buffer.alloc(0);
  push(chunk: Buffer): void {
    this.buf = chunk.length >= 64 ? Buffer.from(chunk.subarray(chunk.length - 64)) : Buffer.concat([this.buf, chunk]).subarray(-64);
  }
  get bytes(): Buffer {
    return this.buf;
  }
}

/**
 * Decodes `source` into `write`. `write` gets output in order and may apply backpressure by
 * returning a promise; a chunk is only valid during the call (copy what you keep). Source chunks
 * are consumed before the next one is asked for, so a source may reuse its buffer. Throws
 * UnpackError; by then the held tail has not been written.
 */
export async function unpackLayer(
  source: AsyncIterable<Buffer>,
  write: (chunk: Buffer) => void | Promise<void>,
  opts: UnpackOptions = {},
): Promise<UnpackResult> {
  if (opts.digests === undefined) return unpackOnWorker(source, write, opts);
  const digests = opts.digests;
  try {
    return await unpackWith(digests, opts.readInto ? followedBy(source, opts.readInto) : source, write, opts);
  } finally {
    digests.close();
  }
}

/** `source`, then what `readInto` reads into fresh 1 MiB buffers (the in-thread path has no slots). */
async function* followedBy(source: AsyncIterable<Buffer>, readInto: (buffer: Buffer) => Promise<number>): AsyncGenerator<Buffer> {
  yield* source;
  for (;;) {
    const buffer = Buffer.allocUnsafe(1 << 20);
    const n = await readInto(buffer);
    if (n === 0) return;
    yield buffer.subarray(0, n);
  }
}

/** Entries checked against the TOC read ahead per output range (~1 ms of work). */
const CHECK_AHEAD_BATCH = 1000;

/**
 * The processor's path: inflate on a worker, tar walk and sha256 here (see UnpackOptions.digests
 * and inflate-worker.ts). Each final range is written first (the write runs in the thread pool)
 * and walked while it is written; its buffer goes back to the worker once both are done.
 */
async function unpackOnWorker(
  source: AsyncIterable<Buffer>,
  write: (chunk: Buffer) => void | Promise<void>,
  opts: UnpackOptions,
): Promise<UnpackResult> {
  const digests = new SyncDigests();
  const walker = new TarWalker(digests);
  let written = 0;
  /** Output offset up to which the walker has seen the stream. */
  let walked = 0;
  let failure: unknown;
  let stopped = false;
  const pending = new Set<Promise<void>>();
  const walk = (range: FilledRange): void => {
    const { buffer, boundaries, start, end } = range;
    // Output offset of buffer[0]: every range continues where the previous one ended.
    const base = walked - start;
    let at = start;
    for (let k = 0; k < boundaries.length; k += 2) {
      const rel = boundaries[k + 1]! - base;
      if (rel > at) walker.data(buffer.subarray(at, rel));
      at = rel;
      walker.memberBegins(boundaries[k]!);
    }
    if (end > at) walker.data(buffer.subarray(at, end));
    walked = base + end;
  };
  const emit = (buffer: Buffer, start: number, end: number, done: () => void): void => {
    written += end - start;
    const result = end > start ? write(buffer.subarray(start, end)) : undefined;
    if (!(result instanceof Promise)) {
      done();
      return;
    }
    const tracked: Promise<void> = result.then(
      () => {
        pending.delete(tracked);
        done();
      },
      (err: unknown) => {
        pending.delete(tracked);
        failure ??= err;
        // The buffer never comes back: wake a push() that waits for the worker.
        inflater.abort(err instanceof Error ? err : new Error(String(err)));
      },
    );
    pending.add(tracked);
  };
  /** Per output buffer: writes of its ranges in flight, and whether its last range was walked. */
  const writing: number[] = [];
  const lastWalked: boolean[] = [];
  const releaseIfDone = (index: number): void => {
    if (!lastWalked[index] || (writing[index] ?? 0) > 0) return;
    lastWalked[index] = false;
    inflater.release(index);
  };
  /**
   * Once the TOC has been read ahead: the walked entries checked against it as they complete,
   * so that little is left to check after the last byte. Dropped at its first failure (the
   * judgement then checks from the start and reports as a single pass would). At most
   * CHECK_AHEAD_BATCH entries per step: a step runs between output ranges, and a long one would
   * leave the worker without a free buffer.
   */
  let checkedAhead: TocVerifier | undefined;
  const checkAhead = (): void => {
    if (!checkedAhead) return;
    try {
      // The newest entry may still be streaming; every one before it is complete.
      checkedAhead.advance(walker.entries, Math.min(walker.entries.length - 1, checkedAhead.position + CHECK_AHEAD_BATCH));
    } catch {
      checkedAhead = undefined;
    }
  };
  const inflater = takeInflateWorker();
  inflater.start((range) => {
    if (stopped) return;
    const { index } = range;
    // Written before it is walked: the write runs in the thread pool meanwhile.
    writing[index] = (writing[index] ?? 0) + 1;
    emit(range.buffer, range.start, range.end, () => {
      writing[index]!--;
      releaseIfDone(index);
    });
    walk(range);
    checkAhead();
    if (range.last) {
      lastWalked[index] = true;
      releaseIfDone(index);
    }
  });
  const settle = async (): Promise<void> => {
    while (pending.size > 0) await Promise.race(pending);
  };
  const tail = new InputTail();
  try {
    let last;
    let tocAhead: TocAhead | undefined;
    try {
      for await (const chunk of source) {
        if (failure !== undefined) throw failure;
        tail.push(chunk);
        await inflater.push(chunk);
      }
      if (opts.readInto) {
        for (;;) {
          if (failure !== undefined) throw failure;
          const read = await inflater.fill(opts.readInto);
          if (read === undefined) break;
          tail.push(read);
        }
      }
      // The worker still has the last megabytes to inflate: meanwhile parse the TOC ahead.
      const footer = parseFooter(tail.bytes);
      const tocInput = footer ? inflater.inputFrom(footer.tocOffset) : undefined;
      if (footer && tocInput) tocAhead = await readTocAhead(footer, tocInput);
      if (tocAhead) checkedAhead = new TocVerifier(tocAhead.toc, walker.memberStarts);
      last = await inflater.end();
      // Nothing more is asked of the worker (its buffers are shared memory and stay valid): its
      // isolate is torn down while this thread walks and verifies the rest, not at our exit.
      inflater.close();
      if (failure !== undefined) throw failure;
    } catch (err) {
      stopped = true;
      await settle().catch(() => {});
      if (err instanceof InflateWorkerError) throw new UnpackError(err.message, err.offset, { cause: err });
      throw err;
    }
    // The last buffer's unreported bytes: walked whole, written but for the held tail.
    const { buffer, start, end } = last.last;
    walk(last.last);
    const held = Math.min(end - start, TAIL_HOLD);
    emit(buffer, start, end - held, () => {});
    const info: LayerEnd = { lastMember: last.lastMember, lastExtra: last.lastExtra, tail: tail.bytes, inputBytes: last.compressedBytes, members: last.members, tocAhead, checkedAhead };
    const release = async (): Promise<number> => {
      emit(buffer, end - held, end, () => {});
      await settle();
      if (failure !== undefined) throw failure;
      return written;
    };
    try {
      // Judged while the last writes drain; release() waits for them.
      if (failure !== undefined) throw failure;
      return await judge(digests, walker, info, release, opts);
    } catch (err) {
      await settle().catch(() => {});
      throw err;
    }
  } finally {
    stopped = true;
    inflater.close();
  }
}

async function unpackWith(
  digests: Digests,
  source: AsyncIterable<Buffer>,
  write: (chunk: Buffer) => void | Promise<void>,
  opts: UnpackOptions,
): Promise<UnpackResult> {
  const walker = new TarWalker(digests);
  const out = new StagedOutput(write, digests);
  let lastMember = { offset: 0, compressedLength: 0, uncompressedLength: 0 };
  let lastExtra: Buffer | undefined;
  const decoder = new GzipMemberDecoder({
    memberStart: (offset, extra) => {
      lastExtra = extra;
      walker.memberBegins(offset);
    },
    data: (chunk) => {
      walker.data(chunk);
    },
    memberEnd: (offset, compressedLength, uncompressedLength) => {
      lastMember = { offset, compressedLength, uncompressedLength };
    },
  });
  decoder.useOutput(out.space);
  const tail = new InputTail();
  try {
    for await (const chunk of source) {
      tail.push(chunk);
      let at = decoder.push(chunk);
      while (at < chunk.length) {
        await out.rotate();
        at += decoder.push(chunk.subarray(at));
      }
      if (out.roomLow) await out.rotate();
      const lag = digests.backlog();
      if (lag) await lag;
    }
    while (!decoder.end()) await out.rotate();
    // Everything but the held tail goes out before the layer is judged.
    await out.rotate();
  } catch (err) {
    await out.settle().catch(() => {});
    if (err instanceof GzipFormatError) throw new UnpackError(err.message, err.offset, { cause: err });
    throw err;
  }
  try {
    const info: LayerEnd = { lastMember, lastExtra, tail: tail.bytes, inputBytes: decoder.compressedBytes, members: decoder.members };
    return await judge(digests, walker, info, async () => {
      await out.release();
      return out.written;
    }, opts);
  } catch (err) {
    await out.settle().catch(() => {});
    throw err;
  }
}

interface LayerEnd {
  lastMember: { offset: number; compressedLength: number; uncompressedLength: number };
  lastExtra: Buffer | undefined;
  /** The newest compressed bytes. */
  tail: Buffer;
  /** Compressed bytes read, and gzip members decoded. */
  inputBytes: number;
  members: number;
  /** The TOC as read ahead from the compressed input; used only if its bytes are the stream's. */
  tocAhead?: TocAhead | undefined;
  /** Entries already checked against tocAhead's TOC (as far as its position). */
  checkedAhead?: TocVerifier | undefined;
}

/** The input is decoded: decides what the layer is, verifies it if eStargz, then releases the held tail. */
async function judge(digests: Digests, walker: TarWalker, end: LayerEnd, release: () => Promise<number>, opts: UnpackOptions): Promise<UnpackResult> {
  const { lastMember, lastExtra } = end;
  await digests.settle();
  walker.finish();
  const inputBytes = end.inputBytes;

  const footer: Footer | undefined =
    lastMember.uncompressedLength === 0 ? parseFooter(end.tail) : undefined;
  const isFooterMember = footer !== undefined && lastMember.compressedLength === footer.size && lastMember.offset === inputBytes - footer.size;
  let result: UnpackResult = { format: 'gzip', inputBytes, outputBytes: 0, members: end.members };
  if (!isFooterMember || !footer) {
    // A layer that carries the eStargz marks (a trailing stargz.index.json entry, an empty last
    // member whose extra field says STARGZ) but no intact footer is a damaged eStargz, not a
    // plain gzip layer: passing it unverified would let a one-byte change switch checking off.
    const last = walker.entries.at(-1);
    // (Only with eStargz's member layout: the same tar recompressed as one plain gzip member is
    // an ordinary layer and passes.)
    const tocIsLast = walker.mode === 'hashing' && walker.toc !== undefined && last !== undefined && last.headerOffset === walker.toc.headerOffset;
    const extraSaysStargz = lastMember.uncompressedLength === 0 && lastExtra !== undefined && lastExtra.includes('STARGZ');
    if (tocIsLast || extraSaysStargz) {
      throw new UnpackError('the layer has eStargz structure (stargz.index.json last, or a STARGZ extra field) but no intact eStargz footer', Math.max(0, inputBytes - 51));
    }
    if (opts.tocDigest !== undefined) {
      throw new UnpackError(`the layer is not eStargz (no footer in its last ${Math.min(51, inputBytes)} bytes) but TOC digest ${opts.tocDigest} was required`, inputBytes);
    }
  } else {
    result = { ...result, ...verifyStargz(walker, footer, opts, end.tocAhead, end.checkedAhead) };
  }
  const outputBytes = await release();
  return { ...result, outputBytes };
}

function verifyStargz(
  walker: TarWalker,
  footer: Footer,
  opts: UnpackOptions,
  tocAhead: TocAhead | undefined,
  checkedAhead: TocVerifier | undefined,
): Pick<UnpackResult, 'format' | 'tocDigest' | 'verified'> {
  const kind = footer.kind === 'estargz' ? 'eStargz' : 'legacy stargz';
  if (walker.problem !== undefined) {
    throw new UnpackError(`${kind} layer with a bad layout: ${walker.problem}`, footer.tocOffset);
  }
  const tocStart = walker.memberStarts.get(footer.tocOffset);
  if (tocStart === undefined) {
    throw new UnpackError(`${kind} footer points at compressed offset ${footer.tocOffset}, where no gzip member starts`, footer.tocOffset);
  }
  const toc = walker.toc;
  if (!toc || toc.headerOffset !== tocStart) {
    throw new UnpackError(`${kind} footer points at compressed offset ${footer.tocOffset}, but no stargz.index.json entry starts that member`, footer.tocOffset);
  }
  // The TOC read ahead counts only as a parse of these very bytes.
  const ahead = tocAhead !== undefined && tocAhead.content.equals(toc.content) ? tocAhead : undefined;
  const tocDigest = ahead?.digest ?? sha256Digest(toc.content);
  if (opts.tocDigest !== undefined && opts.tocDigest !== tocDigest) {
    throw new UnpackError(`TOC digest mismatch: required ${opts.tocDigest}, the layer's TOC is ${tocDigest}`, footer.tocOffset);
  }
  // Everything before the TOC entry is data; the TOC entry must be the last one.
  const data = walker.entries.filter((e) => e.headerOffset < toc.headerOffset);
  if (data.length !== walker.entries.length - 1) {
    throw new UnpackError(`${kind}: entries follow stargz.index.json in the tar stream`, footer.tocOffset);
  }
  // Upstream's builder drops input entries of that name; a second one is a TOC look-alike (and,
  // as the walker hashes no entry of that name, one the check below could not compare).
  const lookAlike = data.find((e) => e.name.equals(TOC_NAME_BYTES));
  if (lookAlike) {
    throw new UnpackError(`${kind}: a second stargz.index.json entry, at tar offset ${lookAlike.headerOffset}, before the TOC`, footer.tocOffset);
  }
  try {
    // Entries checked while streaming count only if they were checked against these very bytes.
    const verifier = ahead !== undefined && checkedAhead !== undefined && checkedAhead.position <= data.length ? checkedAhead : new TocVerifier(ahead?.toc ?? parseToc(toc.content), walker.memberStarts);
    const verified = verifier.finish(data);
    return { format: footer.kind === 'estargz' ? 'estargz' : 'legacy-stargz', tocDigest, verified };
  } catch (err) {
    if (err instanceof VerifyError || err instanceof TocError) {
      throw new UnpackError(`${kind} verification failed: ${err.message}`, footer.tocOffset, { cause: err });
    }
    throw err;
  }
}
