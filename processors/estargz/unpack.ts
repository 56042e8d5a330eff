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
import { createDigests, type Digests } from './digests.ts';
import { GzipFormatError, GzipMemberDecoder } from './gzip-members.ts';
import { type Footer, parseFooter } from './footer.ts';
import { TarWalker } from './tar-walker.ts';
import { parseToc, sha256Digest, TocError } from './toc.ts';
import { verifyToc, VerifyError, type VerifySummary } from './verify-toc.ts';

/** Bytes of output held back until the layer is judged: the tar's two end-of-archive blocks. */
export const TAIL_HOLD = 1024;

export interface UnpackOptions {
  /** Require an eStargz layer whose TOC JSON has this digest. */
  tocDigest?: string;
  /** Where file and chunk sha256 are computed; default a worker thread (createDigests). */
  digests?: Digests;
}

export interface UnpackResult {
  format: 'gzip' | 'estargz' | 'legacy-stargz';
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
 * Holds back the newest TAIL_HOLD bytes of output; everything older goes out at once. Pushed
 * chunks are only valid during the call (the decoder reuses its buffer), so what stays is copied;
 * emitted chunks are likewise only valid during `emit`.
 */
class TailHold {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private readonly emit: (chunk: Buffer) => void;
  constructor(emit: (chunk: Buffer) => void) {
    this.emit = emit;
  }
  push(chunk: Buffer): void {
    if (chunk.length >= TAIL_HOLD) {
      // Everything held before goes, then all of this chunk but its last TAIL_HOLD bytes.
      for (const h of this.held) this.emit(h);
      this.held = [];
      if (chunk.length > TAIL_HOLD) this.emit(chunk.subarray(0, chunk.length - TAIL_HOLD));
      this.held.push(Buffer.from(chunk.subarray(chunk.length - TAIL_HOLD)));
      this.heldBytes = TAIL_HOLD;
      return;
    }
    this.held.push(Buffer.from(chunk));
    this.heldBytes += chunk.length;
    while (this.held.length > 0 && this.heldBytes - this.held[0]!.length >= TAIL_HOLD) {
      const first = this.held.shift()!;
      this.heldBytes -= first.length;
      this.emit(first);
    }
    if (this.heldBytes > TAIL_HOLD && this.held.length > 0) {
      // Split the oldest chunk so exactly TAIL_HOLD bytes stay.
      const first = this.held[0]!;
      const release = this.heldBytes - TAIL_HOLD;
      this.emit(first.subarray(0, release));
      this.held[0] = first.subarray(release);
      this.heldBytes -= release;
    }
  }
  release(): void {
    for (const chunk of this.held) this.emit(chunk);
    this.held = [];
    this.heldBytes = 0;
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
  const digests = opts.digests ?? createDigests();
  try {
    return await unpackWith(digests, source, write, opts);
  } finally {
    digests.close();
  }
}

async function unpackWith(
  digests: Digests,
  source: AsyncIterable<Buffer>,
  write: (chunk: Buffer) => void | Promise<void>,
  opts: UnpackOptions,
): Promise<UnpackResult> {
  const walker = new TarWalker(digests);
  let pendingWrites: Array<void | Promise<void>> = [];
  let outputBytes = 0;
  const hold = new TailHold((chunk) => {
    outputBytes += chunk.length;
    pendingWrites.push(write(chunk));
  });
  let lastMember = { offset: 0, compressedLength: 0, uncompressedLength: 0 };
  let lastExtra: Buffer | undefined;
  const decoder = new GzipMemberDecoder({
    memberStart: (offset, extra) => {
      lastExtra = extra;
      walker.memberBegins(offset);
    },
    data: (chunk) => {
      walker.data(chunk);
      hold.push(chunk);
    },
    memberEnd: (offset, compressedLength, uncompressedLength) => {
      lastMember = { offset, compressedLength, uncompressedLength };
    },
  });
  const tail = new InputTail();
  try {
    for await (const chunk of source) {
      tail.push(chunk);
      decoder.push(chunk);
      const waits = pendingWrites.filter((p) => p instanceof Promise);
      pendingWrites = [];
      if (waits.length > 0) await Promise.all(waits);
      const lag = digests.backlog();
      if (lag) await lag;
    }
    decoder.end();
  } catch (err) {
    if (err instanceof GzipFormatError) throw new UnpackError(err.message, err.offset, { cause: err });
    throw err;
  }
  walker.finish();
  const inputBytes = decoder.compressedBytes;

  const footer: Footer | undefined =
    lastMember.uncompressedLength === 0 ? parseFooter(tail.bytes) : undefined;
  const isFooterMember = footer !== undefined && lastMember.compressedLength === footer.size && lastMember.offset === inputBytes - footer.size;
  let result: UnpackResult = { format: 'gzip', inputBytes, outputBytes: 0, members: decoder.members };
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
    await digests.settle();
    result = { ...result, ...verifyStargz(walker, footer, opts) };
  }
  hold.release();
  await Promise.all(pendingWrites.filter((p) => p instanceof Promise));
  return { ...result, outputBytes };
}

function verifyStargz(walker: TarWalker, footer: Footer, opts: UnpackOptions): Pick<UnpackResult, 'format' | 'tocDigest' | 'verified'> {
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
  const tocDigest = sha256Digest(toc.content);
  if (opts.tocDigest !== undefined && opts.tocDigest !== tocDigest) {
    throw new UnpackError(`TOC digest mismatch: required ${opts.tocDigest}, the layer's TOC is ${tocDigest}`, footer.tocOffset);
  }
  // Everything before the TOC entry is data; the TOC entry must be the last one.
  const data = walker.entries.filter((e) => e.headerOffset < toc.headerOffset);
  if (data.length !== walker.entries.length - 1) {
    throw new UnpackError(`${kind}: entries follow stargz.index.json in the tar stream`, footer.tocOffset);
  }
  try {
    const verified = verifyToc(parseToc(toc.content), data, walker.memberStarts);
    return { format: footer.kind === 'estargz' ? 'estargz' : 'legacy-stargz', tocDigest, verified };
  } catch (err) {
    if (err instanceof VerifyError || err instanceof TocError) {
      throw new UnpackError(`${kind} verification failed: ${err.message}`, footer.tocOffset, { cause: err });
    }
    throw err;
  }
}
