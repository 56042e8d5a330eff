/**
 * zstd:chunked verification while the zstd processor decodes a layer (a DecodeObserver for
 * processors/zstd/decode.ts). Both producers' layouts (../shared/reference/estargz.md §7):
 *
 * - stargz-snapshotter (`ctr-remote convert --zstdchunked`, our `build --zstdchunked`): eStargz's
 *   TOC schema, landmarks, 4 MiB chunks; the TOC is a zstd frame in a skippable frame, then the
 *   40-byte `GnUlInUx` footer. The decoded stream has no TOC entry and no end-of-archive marker.
 * - containers/storage (Podman, Buildah, skopeo `--dest-compress-format zstd:chunked`): its own
 *   TOC schema (same key names plus endOffset/chunkType/…, rolling-checksum chunks, runs of zeros
 *   as `chunkType: zeros` chunks); footer 40-byte `GnUlInUx` (older releases, skopeo 1.9) or
 *   64-byte `GNUlInUx` with a tar-split frame whose digest the TOC carries.
 *
 * In both, every file payload and every chunk starts a zstd frame and the TOC's `offset` is that
 * frame's compressed offset: the same structure as eStargz's gzip members, so the same machinery
 * checks it. TarWalker follows the decoded tar and hashes each run of payload between frame
 * starts (on the hashing worker); at the end of the input the footer (the last skippable frame)
 * says whether the layer is zstd:chunked, the TOC frame captured on the way is decompressed, and
 * verify-toc.ts matches it to the tar entry by entry (each chunk digest, each file digest, the
 * positions). A layer without a footer is ordinary zstd: the walker stops at the first payload
 * that does not start a frame, so it costs a few header parses.
 */
import zlib from 'node:zlib';
import type { DecodeObserver } from '../zstd/decode.ts';
import type { FrameInfo } from '../zstd/zstd-frame-scanner.ts';
import { createDigests, type Digests } from './digests.ts';
import { TarWalker } from './tar-walker.ts';
import { parseToc, sha256Digest, TocError } from './toc.ts';
import { verifyToc, VerifyError, type VerifySummary } from './verify-toc.ts';
import { FooterError, looksLikeFooter, MANIFEST_TYPE_CRFS, parseZstdChunkedFooter, type Position, type ZstdChunkedFooter } from './zstd-chunked-footer.ts';

/** Largest skippable frame kept (TOC and tar-split frames; a TOC of 1M entries is ~100 MB of JSON, far less compressed). */
const MAX_KEPT_FRAME = 256 * 1024 * 1024;
/** Skippable frames kept: a layer ends with TOC, [tar-split,] footer. */
const KEPT_FRAMES = 3;

export interface ZstdChunkedResult {
  format: 'zstd' | 'zstd:chunked';
  /** Footer payload size: 40 (GnUlInUx) or 64 (GNUlInUx). */
  footer?: 40 | 64;
  /** sha256 of the uncompressed TOC JSON (the `containerd.io/snapshot/stargz/toc.digest` annotation). */
  tocDigest?: string;
  /** sha256 of the compressed TOC frame (the `…zstd-chunked.manifest-checksum` annotation). */
  manifestChecksum?: string;
  verified?: VerifySummary;
}

export class ZstdChunkedError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ZstdChunkedError';
    this.offset = offset;
  }
}

interface KeptFrame {
  /** Input offset of the frame's magic; the payload starts 8 bytes later. */
  offset: number;
  size: number;
  /** The payload as it arrives; undefined when larger than MAX_KEPT_FRAME. */
  payload: Buffer | undefined;
  fill: number;
}

export interface ZstdChunkedOptions {
  /** Require a zstd:chunked layer whose TOC has this digest (uncompressed JSON, or the compressed frame's). */
  tocDigest?: string;
  digests?: Digests;
}

export class ZstdChunkedVerifier implements DecodeObserver {
  private readonly digests: Digests;
  private readonly walker: TarWalker;
  private readonly opts: ZstdChunkedOptions;
  /** The newest skippable frames, oldest first. */
  private readonly kept: KeptFrame[] = [];
  /** The input offset just after the last frame seen (zstd or skippable), to know the footer is last. */
  private lastFrameOffset = -1;
  result: ZstdChunkedResult = { format: 'zstd' };

  constructor(opts: ZstdChunkedOptions = {}) {
    this.opts = opts;
    this.digests = opts.digests ?? createDigests();
    this.walker = new TarWalker(this.digests);
  }

  frame(frame: FrameInfo): void {
    this.lastFrameOffset = frame.offset;
    if (frame.kind !== 'skippable') return;
    const size = frame.size ?? 0;
    this.kept.push({ offset: frame.offset, size, payload: size <= MAX_KEPT_FRAME ? Buffer.allocUnsafe(size) : undefined, fill: 0 });
    if (this.kept.length > KEPT_FRAMES) this.kept.shift();
  }

  input(chunk: Buffer, base: number): void {
    for (const k of this.kept) {
      const start = k.offset + 8;
      if (k.fill === k.size || !k.payload) continue;
      const from = Math.max(start + k.fill, base);
      const to = Math.min(start + k.size, base + chunk.length);
      if (to <= from) continue;
      chunk.copy(k.payload, from - start, from - base, to - base);
      k.fill = to - start;
    }
  }

  frameStart(offset: number): void {
    this.walker.memberBegins(offset);
  }

  /** Only while the layer may be zstd:chunked: a plain zstd layer of many frames decodes at full speed. */
  wantsFrameStarts(): boolean {
    return this.walker.mode !== 'off';
  }

  data(chunk: Buffer): void {
    this.walker.data(chunk);
  }

  /** The decoder's output buffers: shared memory the hashing worker reads in place (no copy per byte). */
  allocate(size: number): Buffer {
    return this.digests.allocate(size);
  }

  readers(): Promise<void> | undefined {
    return this.digests.checkpoint();
  }

  close(): void {
    this.digests.close();
  }

  async end(inputBytes: number): Promise<void> {
    await this.digests.settle();
    this.walker.finish();
    const last = this.kept.at(-1);
    const isLast = last !== undefined && last.offset === this.lastFrameOffset && last.offset + 8 + last.size === inputBytes;
    if (!isLast || !last.payload || !looksLikeFooter(last.payload)) {
      // zstd:chunked's layout (the first file payload starts a frame) ending in a skippable
      // frame that is no footer is a damaged zstd:chunked layer, not a plain one: passing it
      // unverified would let a one-byte change switch checking off.
      if (isLast && this.walker.sawLayout) {
        throw new ZstdChunkedError(`the layer has zstd:chunked structure (file payloads start zstd frames, skippable frames at the end) but its last frame (at byte ${last.offset}) is no intact footer`, last.offset);
      }
      if (this.opts.tocDigest !== undefined) {
        throw new ZstdChunkedError(`the layer is not zstd:chunked (its last frame is no GnUlInUx/GNUlInUx footer) but TOC digest ${this.opts.tocDigest} was required`, inputBytes);
      }
      return;
    }
    let footer: ZstdChunkedFooter;
    try {
      footer = parseZstdChunkedFooter(last.payload);
    } catch (err) {
      if (err instanceof FooterError) throw new ZstdChunkedError(err.message, last.offset, { cause: err });
      throw err;
    }
    this.result = { format: 'zstd:chunked', footer: footer.size, ...this.verify(footer, last.offset) };
  }

  private frameAt(position: Position, what: string, footerOffset: number): Buffer {
    const frame = this.kept.find((k) => k.offset + 8 === position.offset);
    if (!frame) throw new ZstdChunkedError(`zstd:chunked footer puts the ${what} at byte ${position.offset}, where no skippable frame's payload starts`, footerOffset);
    if (frame.size !== position.length) {
      throw new ZstdChunkedError(`zstd:chunked ${what}: the footer says ${position.length} bytes, its skippable frame at byte ${frame.offset} holds ${frame.size}`, frame.offset);
    }
    if (!frame.payload) throw new ZstdChunkedError(`zstd:chunked ${what} of ${frame.size} bytes is larger than the ${MAX_KEPT_FRAME}-byte limit`, frame.offset);
    return frame.payload;
  }

  private verify(footer: ZstdChunkedFooter, footerOffset: number): Omit<ZstdChunkedResult, 'format' | 'footer'> {
    if (footer.manifestType !== MANIFEST_TYPE_CRFS) {
      throw new ZstdChunkedError(`zstd:chunked footer: manifest type ${footer.manifestType} is not supported (want ${MANIFEST_TYPE_CRFS})`, footerOffset);
    }
    if (this.walker.problem !== undefined) throw new ZstdChunkedError(`zstd:chunked layer with a bad layout: ${this.walker.problem}`, footerOffset);
    const compressed = this.frameAt(footer.toc, 'TOC', footerOffset);
    let json: Buffer;
    try {
      json = zlib.zstdDecompressSync(compressed, { maxOutputLength: Math.max(1, footer.toc.uncompressedLength) });
    } catch (err) {
      throw new ZstdChunkedError(`zstd:chunked TOC at byte ${footer.toc.offset} does not decompress to its ${footer.toc.uncompressedLength} bytes: ${(err as Error).message}`, footer.toc.offset, { cause: err });
    }
    if (json.length !== footer.toc.uncompressedLength) {
      throw new ZstdChunkedError(`zstd:chunked TOC at byte ${footer.toc.offset}: ${json.length} bytes decompressed, the footer says ${footer.toc.uncompressedLength}`, footer.toc.offset);
    }
    const tocDigest = sha256Digest(json);
    const manifestChecksum = sha256Digest(compressed);
    const required = this.opts.tocDigest;
    if (required !== undefined && required !== tocDigest && required !== manifestChecksum) {
      throw new ZstdChunkedError(`TOC digest mismatch: required ${required}, the layer's TOC is ${tocDigest} (compressed ${manifestChecksum})`, footer.toc.offset);
    }
    try {
      const toc = parseToc(json);
      if (footer.tarSplit) {
        const tarSplit = this.frameAt(footer.tarSplit, 'tar-split', footerOffset);
        const actual = sha256Digest(tarSplit);
        if (toc.tarSplitDigest !== undefined && toc.tarSplitDigest !== actual) {
          throw new ZstdChunkedError(`zstd:chunked tar-split digest mismatch: TOC says ${toc.tarSplitDigest}, the frame at byte ${footer.tarSplit.offset} is ${actual}`, footer.tarSplit.offset);
        }
      }
      const verified = verifyToc(toc, this.walker.entries, this.walker.memberStarts);
      return { tocDigest, manifestChecksum, verified };
    } catch (err) {
      if (err instanceof VerifyError || err instanceof TocError) {
        throw new ZstdChunkedError(`zstd:chunked verification failed: ${err.message}`, footer.toc.offset, { cause: err });
      }
      throw err;
    }
  }
}
