/**
 * The zstd:chunked footers (../shared/reference/estargz.md §7): the last frame of the layer, a
 * zstd skippable frame whose payload is little-endian u64 fields followed by an 8-byte magic.
 *
 * - 40-byte payload, magic `GnUlInUx`: {TOC offset, TOC compressed length, TOC uncompressed
 *   length, manifest type 1}. Written by stargz-snapshotter (`ctr-remote convert --zstdchunked`,
 *   our `build --zstdchunked`) and by older containers/storage (skopeo 1.9's `zstd:chunked`).
 * - 64-byte payload, magic `GNUlInUx`: the same four, then {tar-split offset, compressed length,
 *   uncompressed length}. Current containers/storage.
 *
 * Offsets point at the compressed bytes inside the skippable frames (after their 8-byte headers).
 */

/** zstd skippable frame magic 0x184D2A50, as it appears in the stream. */
export const SKIPPABLE_MAGIC = Buffer.from('502a4d18', 'hex');
export const FOOTER_MAGIC_40 = Buffer.from('GnUlInUx', 'latin1');
export const FOOTER_MAGIC_64 = Buffer.from('GNUlInUx', 'latin1');
/** The only manifest type either producer writes ("CRFS"). */
export const MANIFEST_TYPE_CRFS = 1;

export interface Position {
  offset: number;
  length: number;
  uncompressedLength: number;
}

export interface ZstdChunkedFooter {
  /** Payload length: 40 (stargz-snapshotter / old containers/storage) or 64 (containers/storage). */
  size: 40 | 64;
  toc: Position;
  manifestType: number;
  tarSplit?: Position;
}

export class FooterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FooterError';
  }
}

function u64(payload: Buffer, at: number, what: string): number {
  const v = payload.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FooterError(`zstd:chunked footer: ${what} ${v} is out of range`);
  return Number(v);
}

/** Whether a skippable frame's payload ends with either footer magic (so it claims to be a footer). */
export function looksLikeFooter(payload: Buffer): boolean {
  if (payload.length < 8) return false;
  const tail = payload.subarray(payload.length - 8);
  return tail.equals(FOOTER_MAGIC_40) || tail.equals(FOOTER_MAGIC_64);
}

/** Parses a footer payload; throws FooterError when it claims to be one (its magic) but is malformed. */
export function parseZstdChunkedFooter(payload: Buffer): ZstdChunkedFooter {
  const tail = payload.subarray(Math.max(0, payload.length - 8));
  const size = tail.equals(FOOTER_MAGIC_40) ? 40 : tail.equals(FOOTER_MAGIC_64) ? 64 : undefined;
  if (size === undefined) throw new FooterError('the last skippable frame is not a zstd:chunked footer (no GnUlInUx/GNUlInUx magic)');
  if (payload.length !== size) {
    throw new FooterError(`zstd:chunked footer with magic ${tail.toString('latin1')} has a ${payload.length}-byte payload, expected ${size}`);
  }
  const footer: ZstdChunkedFooter = {
    size,
    toc: { offset: u64(payload, 0, 'TOC offset'), length: u64(payload, 8, 'TOC length'), uncompressedLength: u64(payload, 16, 'TOC uncompressed length') },
    manifestType: u64(payload, 24, 'manifest type'),
  };
  if (size === 64) {
    footer.tarSplit = { offset: u64(payload, 32, 'tar-split offset'), length: u64(payload, 40, 'tar-split length'), uncompressedLength: u64(payload, 48, 'tar-split uncompressed length') };
  }
  return footer;
}

/** A skippable frame (header + payload). */
export function skippableFrame(payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  SKIPPABLE_MAGIC.copy(header, 0);
  header.writeUInt32LE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** The footer frame for `footer` (the 40- or 64-byte layout by `footer.size`). */
export function encodeZstdChunkedFooter(footer: ZstdChunkedFooter): Buffer {
  const payload = Buffer.alloc(footer.size);
  const fields = [footer.toc.offset, footer.toc.length, footer.toc.uncompressedLength, footer.manifestType];
  if (footer.size === 64) {
    const ts = footer.tarSplit ?? { offset: 0, length: 0, uncompressedLength: 0 };
    fields.push(ts.offset, ts.length, ts.uncompressedLength);
  }
  fields.forEach((v, i) => payload.writeBigUInt64LE(BigInt(v), i * 8));
  (footer.size === 64 ? FOOTER_MAGIC_64 : FOOTER_MAGIC_40).copy(payload, footer.size - 8);
  return skippableFrame(payload);
}
