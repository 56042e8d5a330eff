/**
 * Follows the entry structure of a tar stream as it is written, to know the last offset where
 * the stream could end cleanly. Why: containerd reads a processor's tar with Go's archive/tar,
 * which treats EOF exactly at an entry boundary as the end of the archive but EOF inside an
 * entry as "unexpected EOF". Only in the first case does containerd go on to ask the processor
 * for its error (core/diff/apply: extract, drain, then Err()), so cutting a failed stream at a
 * boundary is what puts our message, with its offset, in front of the operator; the diff_id
 * check still fails because the stream is short.
 *
 * It reads the 512-byte headers (size in octal or base-256, type) and the `size=` record of pax
 * headers, which overrides the next header's size for files of 8 GiB and more. pax ('x', 'g')
 * and GNU long-name ('L', 'K') records belong to the entry after them, so no boundary is placed
 * after them. A header that does not parse sets `lost`: then the caller falls back to a plain cut.
 */

import { BLOCK, isExtensionTypeflag, isHeaderOnlyTypeflag, isZeroBlock, parsePaxRecords, paxSize, sizeOf, typeflagOf } from '../../src/tar/header.ts';

/** Largest pax record block looked into for a `size` record (they are small: key=value lines). */
const MAX_PAX = 65536;

export class TarBoundaries {
  /** Output offset just after the last complete, self-contained entry (0 = start). */
  lastBoundary = 0;
  /** The boundary before lastBoundary (so a failure never yields a complete-looking archive). */
  previousBoundary = 0;
  /** The stream stopped looking like tar; no further boundaries are reported. */
  lost = false;
  private offset = 0;
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  /** Bytes of entry data (with padding) still to pass. */
  private skip = 0;
  private pendingExtension = false;
  /** Data of a pax 'x' record being read, and how much of it has arrived. */
  private pax: { data: Buffer; fill: number } | undefined;
  /** Size from the last pax record, for the header that follows it. */
  private paxSize: number | undefined;

  feed(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && !this.lost) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        if (this.pax) {
          const take = Math.min(n, this.pax.data.length - this.pax.fill);
          this.pax.data.set(chunk.subarray(i, i + take), this.pax.fill);
          this.pax.fill += take;
        }
        this.skip -= n;
        i += n;
        this.offset += n;
        if (this.skip === 0) this.entryEnded();
        continue;
      }
      const n = Math.min(BLOCK - this.headerFill, chunk.length - i);
      this.header.set(chunk.subarray(i, i + n), this.headerFill);
      this.headerFill += n;
      i += n;
      this.offset += n;
      if (this.headerFill < BLOCK) break;
      this.headerFill = 0;
      this.onHeader();
    }
  }

  private onHeader(): void {
    if (isZeroBlock(this.header)) {
      // End-of-archive blocks: ending here is clean too.
      this.entryEnded();
      return;
    }
    const type = typeflagOf(this.header);
    let size: number;
    try {
      size = sizeOf(this.header, this.offset - BLOCK);
    } catch {
      this.lost = true;
      return;
    }
    if (this.paxSize !== undefined && type !== 'x' && type !== 'g') {
      size = this.paxSize;
      this.paxSize = undefined;
    }
    // Like Go's archive/tar: links, devices, dirs and fifos carry no data whatever size says;
    // every other type (files, sparse files, extension records, unknown types) carries `size` bytes.
    const hasData = !isHeaderOnlyTypeflag(type);
    this.pendingExtension = isExtensionTypeflag(type);
    this.pax = type === 'x' ? { data: Buffer.alloc(Math.min(size, MAX_PAX)), fill: 0 } : undefined;
    this.skip = hasData ? Math.ceil(size / BLOCK) * BLOCK : 0;
    if (this.skip === 0) this.entryEnded();
  }

  private entryEnded(): void {
    if (this.pax) {
      try {
        this.paxSize = paxSize(parsePaxRecords(this.pax.data.subarray(0, this.pax.fill), this.offset), this.offset);
      } catch {
        // A pax block we cannot read (or one cut at MAX_PAX): its entry's size stays the header's.
      }
      this.pax = undefined;
    }
    if (this.pendingExtension) {
      this.pendingExtension = false;
      return;
    }
    if (this.offset !== this.lastBoundary) {
      this.previousBoundary = this.lastBoundary;
      this.lastBoundary = this.offset;
    }
  }
}
