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

const BLOCK = 512;
const EXTENSION_TYPES = new Set(['x', 'g', 'L', 'K']);
const HEADER_ONLY_TYPES = new Set(['1', '2', '3', '4', '5', '6']);

function parseSize(header: Uint8Array): number | undefined {
  const field = header.subarray(124, 136);
  if (field[0]! & 0x80) {
    // base-256 (GNU/star) for sizes ≥ 8 GiB
    let v = 0;
    for (let i = 1; i < field.length; i += 1) v = v * 256 + field[i]!;
    return v;
  }
  let text = '';
  for (const b of field) {
    if (b === 0 || b === 0x20) {
      if (text.length > 0) break;
      continue;
    }
    if (b < 0x30 || b > 0x37) return undefined;
    text += String.fromCharCode(b);
  }
  return text.length === 0 ? 0 : Number.parseInt(text, 8);
}

export class TarBoundaries {
  /** Output offset just after the last complete, self-contained entry (0 = start). */
  lastBoundary = 0;
  /** The boundary before lastBoundary (so a failure never yields a complete-looking archive). */
  previousBoundary = 0;
  /** The stream stopped looking like tar; no further boundaries are reported. */
  lost = false;
  private offset = 0;
  private header = new Uint8Array(BLOCK);
  private headerFill = 0;
  /** Bytes of entry data (with padding) still to pass. */
  private skip = 0;
  private pendingExtension = false;
  /** Data of a pax 'x' record being read (small: key=value lines). */
  private pax: number[] | undefined;
  /** Size from the last pax record, for the header that follows it. */
  private paxSize: number | undefined;

  feed(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && !this.lost) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        if (this.pax) for (let k = 0; k < n && this.pax.length < 65536; k += 1) this.pax.push(chunk[i + k]!);
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
    // Cheap test first: a real header has a name and a checksum.
    if (this.header[0] === 0 && this.header[148] === 0 && this.header.every((b) => b === 0)) {
      // End-of-archive blocks: ending here is clean too.
      this.entryEnded();
      return;
    }
    const type = String.fromCharCode(this.header[156]!);
    let size = parseSize(this.header);
    if (this.paxSize !== undefined && type !== 'x' && type !== 'g') {
      size = this.paxSize;
      this.paxSize = undefined;
    }
    if (size === undefined) {
      this.lost = true;
      return;
    }
    // Like Go's archive/tar: links, devices, dirs and fifos carry no data whatever size says;
    // every other type (files, sparse files, extension records, unknown types) carries `size` bytes.
    const hasData = !HEADER_ONLY_TYPES.has(type);
    this.pendingExtension = EXTENSION_TYPES.has(type);
    this.pax = type === 'x' ? [] : undefined;
    this.skip = hasData ? Math.ceil(size / BLOCK) * BLOCK : 0;
    if (this.skip === 0) this.entryEnded();
  }

  private entryEnded(): void {
    if (this.pax) {
      const m = /(?:^|\n)\d+ size=(\d+)\n/.exec(Buffer.from(this.pax).toString('latin1'));
      if (m) this.paxSize = Number(m[1]);
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
