/**
 * eStargz (51-byte) and legacy stargz (47-byte) footers (../shared/reference/estargz.md §1.3,
 * §1.4). Both are empty gzip members whose FEXTRA field carries the TOC's compressed offset as
 * 16 lowercase hex digits followed by `STARGZ`.
 */

export const FOOTER_SIZE = 51;
export const LEGACY_FOOTER_SIZE = 47;

/** An empty stored deflate block plus CRC32 = 0 and ISIZE = 0. */
const EMPTY_DEFLATE_AND_TRAILER = Buffer.from('010000ffff0000000000000000', 'hex');

function offsetHex(tocOffset: number): string {
  if (!Number.isSafeInteger(tocOffset) || tocOffset < 0) throw new RangeError(`bad TOC offset ${tocOffset}`);
  return tocOffset.toString(16).padStart(16, '0');
}

const ESTARGZ_HEAD = Buffer.from('1f8b08040000000000ff1a0053471600', 'hex');
const LEGACY_HEAD = Buffer.from('1f8b08040000000000ff1600', 'hex');

export function encodeFooter(tocOffset: number): Buffer {
  return Buffer.concat([
    ESTARGZ_HEAD,
    Buffer.from(`${offsetHex(tocOffset)}STARGZ`, 'latin1'),
    EMPTY_DEFLATE_AND_TRAILER,
  ]);
}

export function encodeLegacyFooter(tocOffset: number): Buffer {
  return Buffer.concat([
    LEGACY_HEAD,
    Buffer.from(`${offsetHex(tocOffset)}STARGZ`, 'latin1'),
    EMPTY_DEFLATE_AND_TRAILER,
  ]);
}

export interface Footer {
  kind: 'estargz' | 'legacy';
  tocOffset: number;
  size: number;
}

function parseOffset(hex: string): number | undefined {
  if (!/^[0-9a-f]{16}$/.test(hex)) return undefined;
  const n = Number.parseInt(hex, 16);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Recognizes a footer in the last bytes of a blob (`tail` = at least the last 51 bytes, or all of a shorter blob). */
export function parseFooter(tail: Uint8Array): Footer | undefined {
  const t = Buffer.from(tail.buffer, tail.byteOffset, tail.length);
  if (t.length >= FOOTER_SIZE) {
    const f = t.subarray(t.length - FOOTER_SIZE);
    // Every byte but the hex offset is fixed: all writers (Go's gzip with a zero header) emit
    // exactly these, and being exact means no byte of the footer can change unnoticed.
    if (f.subarray(0, 16).equals(ESTARGZ_HEAD) && f.toString('latin1', 32, 38) === 'STARGZ' && f.subarray(38).equals(EMPTY_DEFLATE_AND_TRAILER)) {
      const tocOffset = parseOffset(f.toString('latin1', 16, 32));
      if (tocOffset !== undefined) return { kind: 'estargz', tocOffset, size: FOOTER_SIZE };
    }
  }
  if (t.length >= LEGACY_FOOTER_SIZE) {
    const f = t.subarray(t.length - LEGACY_FOOTER_SIZE);
    if (f.subarray(0, 12).equals(LEGACY_HEAD) && f.toString('latin1', 28, 34) === 'STARGZ' && f.subarray(34).equals(EMPTY_DEFLATE_AND_TRAILER)) {
      const tocOffset = parseOffset(f.toString('latin1', 12, 28));
      if (tocOffset !== undefined) return { kind: 'legacy', tocOffset, size: LEGACY_FOOTER_SIZE };
    }
  }
  return undefined;
}
