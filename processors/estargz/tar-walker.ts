/**
 * Follows the decompressed tar stream as it passes through the unpack processor and records what
 * eStargz verification needs at the end: every entry's header facts and, for regular files, the
 * sha256 of the whole content and of each run of content between gzip member boundaries
 * ("segments": one per chunk in a layer built without innerOffset packing).
 *
 * The walker never fails the stream: the processor also passes ordinary gzip layers, whose tar
 * may use features eStargz cannot (GNU sparse, PAX globals). A parse problem is recorded and only
 * matters if the layer turns out to be eStargz. Hashing starts only once the layer looks like
 * eStargz (its first non-empty file payload starts a gzip member), so plain gzip layers cost a
 * few header parses.
 */
import { type DigestHandle, type Digests, SyncDigests } from './digests.ts';
import { BLOCK, type BasicHeader, decodeBasicHeader, isExtensionTypeflag, isZeroBlock, mergeBasic, padding, parsePaxRecords, TarFormatError } from '../../src/tar/header.ts';
import { TOC_NAME_BYTES } from './toc.ts';

export interface Segment {
  /** Offset in the file's content. */
  fileOffset: number;
  length: number;
  digest: string;
  /** Compressed offset of the member the segment starts in, and the uncompressed distance into it. */
  memberOffset: number;
  innerOffset: number;
}

export interface WalkedEntry {
  name: Buffer;
  /** eStargz type, or 'other' for typeflags eStargz cannot describe. */
  type: string;
  size: number;
  linkName: Buffer;
  /** Uncompressed offset of the entry's first header block. */
  headerOffset: number;
  /** Uncompressed offset of the payload. */
  payloadOffset: number;
  digest?: string;
  segments: Segment[];
}

const MAX_META = 16 * 1024 * 1024;
/** Largest TOC we hold (upstream's reader has no lower limit we rely on). */
export const MAX_TOC_BYTES = 256 * 1024 * 1024;

type Mode = 'undecided' | 'hashing' | 'off';

export class TarWalker {
  readonly entries: WalkedEntry[] = [];
  /** Why walking stopped early, if it did. */
  problem: string | undefined;
  /** Content of the last entry named exactly `stargz.index.json`, and its header offset. */
  toc: { content: Buffer; headerOffset: number } | undefined;
  mode: Mode = 'undecided';
  /** The layer had eStargz's layout (a first payload starting a member), even if walking failed later. */
  sawLayout = false;
  /** The first non-empty file payload is next; is it at a member start? */
  private deciding = false;
  /** Uncompressed offset of the member being decoded and its compressed offset. */
  private memberStart = 0;
  private memberOffset = 0;
  /** Compressed member offset → uncompressed start. */
  readonly memberStarts = new Map<number, number>();
  pos = 0;

  private state: 'header' | 'meta' | 'payload' | 'skip' | 'end' = 'header';
  private block = Buffer.alloc(BLOCK);
  private blockFill = 0;
  private remaining = 0;
  private metaKind = '';
  private metaParts: Buffer[] = [];
  private metaHeaderAt = 0;
  private pax: Array<[string, Buffer]> = [];
  private gnuName: Buffer | undefined;
  private gnuLink: Buffer | undefined;
  private entryStart = -1;
  private current: WalkedEntry | undefined;
  private whole: DigestHandle | undefined;
  /**
   * The segment being hashed: its record (pushed to the entry once it has bytes) and its hash,
   * created at its first bytes unless they are all of it (then digested in one call).
   */
  private segment: { hash: DigestHandle | undefined; record: Segment } | undefined;
  private readonly digests: Digests;

  /** Digests may arrive later (worker thread): call `digests.settle()` before reading them. */
  constructor(digests: Digests = new SyncDigests()) {
    this.digests = digests;
  }
  /** The TOC entry's content as it arrives: one buffer of its size (a TOC can be tens of MB). */
  private tocParts: { buffer: Buffer; fill: number } | undefined;
  private tocHeaderAt = 0;

  memberBegins(compressedOffset: number): void {
    this.memberStart = this.pos;
    this.memberOffset = compressedOffset;
    this.memberStarts.set(compressedOffset, this.pos);
    if (this.deciding && this.current && this.pos === this.current.payloadOffset) {
      this.deciding = false;
      this.mode = 'hashing';
      this.sawLayout = true;
      this.startHashing(this.pos);
      return;
    }
    if (this.state === 'payload' && this.current && this.mode === 'hashing' && this.segment) this.closeSegment(true);
  }

  /**
   * A file's payload begins: hash its first segment. The whole-file digest is forked from the
   * segment's state only when a second segment begins; a one-segment file's digest is its
   * segment's, so most files are hashed once.
   */
  private startHashing(at: number): void {
    this.whole = undefined;
    this.openSegment(at);
  }

  private fail(message: string): void {
    this.problem ??= message;
    this.state = 'end';
    this.mode = 'off';
    this.current = undefined;
    this.tocParts = undefined;
  }

  data(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && this.state !== 'end') {
      switch (this.state) {
        case 'header': {
          const take = Math.min(BLOCK - this.blockFill, chunk.length - at);
          chunk.copy(this.block, this.blockFill, at, at + take);
          this.blockFill += take;
          at += take;
          this.pos += take;
          if (this.blockFill === BLOCK) {
            this.blockFill = 0;
            this.onHeaderBlock(this.pos - BLOCK);
          }
          break;
        }
        case 'meta': {
          const take = Math.min(this.remaining, chunk.length - at);
          this.metaParts.push(Buffer.from(chunk.subarray(at, at + take)));
          this.remaining -= take;
          at += take;
          this.pos += take;
          if (this.remaining === 0) this.onMetaDone();
          break;
        }
        case 'payload': {
          if (this.deciding) {
            this.deciding = false;
            const name = JSON.stringify(this.current!.name.toString('utf8'));
            this.fail(`the payload of ${name} (tar offset ${this.current!.payloadOffset}) does not start a gzip member, as eStargz requires`);
            this.pos += chunk.length - at;
            return;
          }
          const take = Math.min(this.remaining, chunk.length - at);
          const part = chunk.subarray(at, at + take);
          const seg = this.segment;
          if (this.mode === 'hashing' && seg) {
            if (this.whole) {
              seg.hash ??= this.digests.create();
              this.digests.updateAll([this.whole, seg.hash], part);
            } else if (seg.hash === undefined && take === this.remaining) {
              // The whole segment, and the rest of a file hashed as one segment: digested at once.
              const entry = this.current!;
              const { record } = seg;
              this.digests.digestOf(part, (digest) => {
                record.digest = digest;
                entry.digest = digest;
              });
            } else {
              seg.hash ??= this.digests.create();
              seg.hash.update(part);
            }
          }
          if (this.tocParts) {
            part.copy(this.tocParts.buffer, this.tocParts.fill);
            this.tocParts.fill += part.length;
          }
          this.remaining -= take;
          at += take;
          this.pos += take;
          if (this.remaining === 0) this.onPayloadDone();
          break;
        }
        case 'skip': {
          const take = Math.min(this.remaining, chunk.length - at);
          this.remaining -= take;
          at += take;
          this.pos += take;
          if (this.remaining === 0) this.state = 'header';
          break;
        }
        default:
          return;
      }
    }
    if (this.state === 'end') this.pos += chunk.length - at;
  }

  /** End of the stream: a payload still waiting for its member decision ended the layer. */
  finish(): void {
    if (this.deciding) this.fail('the layer ends inside a file payload');
  }

  private skip(n: number): void {
    this.remaining = n;
    this.state = n > 0 ? 'skip' : 'header';
  }

  private onHeaderBlock(offset: number): void {
    if (isZeroBlock(this.block)) {
      // End-of-archive: what follows is not looked at (containerd's tar reader stops here too).
      this.state = 'end';
      return;
    }
    let raw: BasicHeader;
    try {
      raw = decodeBasicHeader(this.block, offset);
    } catch (err) {
      this.fail((err as Error).message);
      return;
    }
    if (this.entryStart === -1) this.entryStart = offset;
    if (isExtensionTypeflag(raw.typeflag)) {
      if (raw.size > MAX_META) return this.fail(`extension header of ${raw.size} bytes at tar offset ${offset}`);
      this.metaKind = raw.typeflag;
      this.metaParts = [];
      this.metaHeaderAt = offset;
      this.remaining = raw.size;
      this.state = 'meta';
      if (raw.size === 0) this.onMetaDone();
      return;
    }
    let folded;
    try {
      folded = mergeBasic(raw, this.pax, this.gnuName, this.gnuLink, offset);
    } catch (err) {
      return this.fail((err as Error).message);
    }
    const { name, linkName, type, size } = folded;
    const payloadOffset = offset + BLOCK;
    const entry: WalkedEntry = { name, type, size, linkName, headerOffset: this.entryStart, payloadOffset, segments: [] };
    this.entries.push(entry);
    this.pax = [];
    this.gnuName = undefined;
    this.gnuLink = undefined;
    this.entryStart = -1;
    if (size === 0) return;
    this.current = entry;
    this.remaining = size;
    this.state = 'payload';
    // Whether this payload starts a gzip member is known only when the next member begins
    // (memberBegins) or payload bytes arrive without one (data).
    if (type === 'reg' && this.mode === 'undecided') this.deciding = true;
    const isToc = name.equals(TOC_NAME_BYTES);
    // The TOC entry is not hashed: no TOC lists itself, and an entry of that name anywhere but
    // last fails the layer before digests are compared. (3 MB of sha256 on a 9k-entry layer.)
    if (this.mode === 'hashing' && type === 'reg' && !isToc) this.startHashing(payloadOffset);
    if (isToc) {
      if (size > MAX_TOC_BYTES) {
        this.tocParts = undefined;
        this.problem ??= `the stargz.index.json TOC entry is ${size} bytes, larger than the ${MAX_TOC_BYTES / (1024 * 1024)} MiB TOC limit`;
      } else {
        this.tocParts = { buffer: Buffer.allocUnsafeSlow(size), fill: 0 };
        this.tocHeaderAt = entry.headerOffset;
      }
    }
  }

  private openSegment(at: number): void {
    const fileOffset = at - this.current!.payloadOffset;
    this.segment = {
      hash: undefined,
      record: { fileOffset, length: 0, digest: '', memberOffset: this.memberOffset, innerOffset: at - this.memberStart },
    };
  }

  private closeSegment(reopen: boolean): void {
    const seg = this.segment;
    const entry = this.current;
    if (seg && entry) {
      const length = this.pos - entry.payloadOffset - seg.record.fileOffset;
      if (length > 0) {
        const segment = seg.record;
        segment.length = length;
        entry.segments.push(segment);
        // No hash: the segment came in one piece and data() has digested it (see there).
        const hash = seg.hash;
        if (hash !== undefined) {
          if (reopen && !this.whole) this.whole = this.digests.fork(hash);
          const wholeToo = !reopen && !this.whole;
          hash.end((digest) => {
            segment.digest = digest;
            if (wholeToo) entry.digest = digest;
          });
        }
      } else if (reopen) {
        // A member boundary exactly at the payload start: keep the segment, move its member.
        seg.record.memberOffset = this.memberOffset;
        seg.record.innerOffset = 0;
        return;
      }
    }
    this.segment = undefined;
    if (reopen) this.openSegment(this.pos);
  }

  private onPayloadDone(): void {
    const entry = this.current!;
    if (this.mode === 'hashing' && entry.type === 'reg' && this.segment) {
      this.closeSegment(false);
      this.whole?.end((digest) => {
        entry.digest = digest;
      });
      this.whole = undefined;
    }
    if (this.tocParts) {
      this.toc = { content: this.tocParts.buffer, headerOffset: this.tocHeaderAt };
      this.tocParts = undefined;
    }
    this.current = undefined;
    this.skip(padding(entry.size));
  }

  private onMetaDone(): void {
    const body = Buffer.concat(this.metaParts);
    this.metaParts = [];
    const size = body.length;
    try {
      if (this.metaKind === 'x') this.pax = [...this.pax, ...parsePaxRecords(body, this.metaHeaderAt)];
      else if (this.metaKind === 'L' || this.metaKind === 'K') {
        const end = body.indexOf(0);
        const value = end === -1 ? body : body.subarray(0, end);
        if (this.metaKind === 'L') this.gnuName = value;
        else this.gnuLink = value;
      }
    } catch (err) {
      if (err instanceof TarFormatError) return this.fail(err.message);
      throw err;
    }
    this.skip(padding(size));
  }
}

