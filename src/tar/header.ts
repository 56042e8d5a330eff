/**
 * Reading tar headers: the 512-byte header block's fields, PAX extended-header records, and the
 * folding of PAX records and GNU long names into one logical entry. One parser for every tar
 * reader in the project: the eStargz builder and verifying unpack (processors/estargz), and the
 * zstd processor's entry-boundary tracker (processors/zstd/tar-boundaries.ts). Writing headers is
 * not here (processors/estargz/tar-encode.ts).
 *
 * Our own instead of tar-stream's because the eStargz TOC needs what tar-stream normalises away
 * (the raw mode field with its S_IFMT bits, the raw PAX record list), and the stream processors
 * call this for every header of every layer, so it scans bytes in place and allocates little.
 * Tests use tar-stream and GNU tar as the independent readers and writers.
 */

export const BLOCK = 512;

/** The typeflags eStargz can describe (../shared/reference/estargz.md §2 `type`). */
export type EntryType = 'reg' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

const TYPEFLAG_TO_TYPE: Readonly<Record<string, EntryType>> = {
  '0': 'reg',
  '\0': 'reg',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/** The entry type a typeflag stands for, or undefined for the others (extensions, sparse, contiguous, …). */
export function entryTypeOf(typeflag: string): EntryType | undefined {
  return TYPEFLAG_TO_TYPE[typeflag];
}

/** Extension headers: they describe the entry that follows them and are not entries themselves. */
export function isExtensionTypeflag(typeflag: string): boolean {
  return typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K';
}

/**
 * Types whose payload is empty whatever the size field says (Go's archive/tar isHeaderOnlyType:
 * links, devices, directories, fifos). Every other type carries `size` bytes.
 */
export function isHeaderOnlyTypeflag(typeflag: string): boolean {
  return typeflag >= '1' && typeflag <= '6' && typeflag.length === 1;
}

/** One logical tar entry after PAX / GNU long-name processing. Names are raw bytes. */
export interface TarEntryHeader {
  name: Buffer;
  linkName: Buffer;
  type: EntryType;
  /** The raw mode field. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (PAX may make it fractional). */
  mtime: number;
  uname: string;
  gname: string;
  devMajor: number;
  devMinor: number;
  /** PAX records in input order, `path`/`linkpath`/`size` included when they were given. */
  pax: Array<[string, Buffer]>;
}

export class TarFormatError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(`${message} (tar offset ${offset})`);
    this.name = 'TarFormatError';
    this.offset = offset;
  }
}

function cStringEnd(block: Uint8Array, start: number, length: number): number {
  let end = start;
  while (end < start + length && block[end] !== 0) end++;
  return end;
}

/** A copy from Buffer's pool (not an ArrayBuffer of its own per field: cheaper to make and to collect). */
function cString(block: Buffer, start: number, length: number): Buffer {
  const end = cStringEnd(block, start, length);
  if (end === start) return EMPTY;
  const out = Buffer.allocUnsafe(end - start);
  block.copy(out, 0, start, end);
  return out;
}

function cText(block: Buffer, start: number, length: number): string {
  const end = cStringEnd(block, start, length);
  return end === start ? '' : block.toString('utf8', start, end);
}

const EMPTY = Buffer.alloc(0);
const SLASH = Buffer.from('/');

const isPad = (c: number): boolean => c === 0 || c === 0x20;

/** Octal (space/NUL terminated) or GNU base-256 numeric field. */
export function numericField(block: Uint8Array, start: number, length: number, what: string, offset: number): number {
  const first = block[start]!;
  if (first & 0x80) {
    if (first === 0xff) throw new TarFormatError(`negative base-256 ${what}`, offset);
    let value = first & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + block[start + i]!;
    if (!Number.isSafeInteger(value)) throw new TarFormatError(`${what} too large`, offset);
    return value;
  }
  let from = start;
  let to = start + length;
  while (to > from && isPad(block[to - 1]!)) to--;
  while (from < to && isPad(block[from]!)) from++;
  let value = 0;
  for (let i = from; i < to; i++) {
    const digit = block[i]! - 0x30;
    if (digit < 0 || digit > 7) {
      const text = Buffer.from(block.buffer, block.byteOffset + from, to - from).toString('latin1');
      throw new TarFormatError(`bad octal ${what} ${JSON.stringify(text)}`, offset);
    }
    value = value * 8 + digit;
  }
  return value;
}

export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** Zero bytes that follow `size` bytes of payload to reach the next block. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function checksumOk(block: Uint8Array, offset: number): boolean {
  const stored = numericField(block, 148, 8, 'checksum', offset);
  // The checksum field itself counts as eight spaces.
  const sum = block.byteOffset % 4 === 0 ? wordByteSum(block) : byteSum(block);
  return sum + 8 * 0x20 === stored;
}

/** Unsigned sum of a header block's bytes but the checksum field's (148..156), a byte at a time. */
function byteSum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 148; i++) sum += block[i]!;
  for (let i = 156; i < BLOCK; i++) sum += block[i]!;
  return sum;
}

/**
 * The same sum, four bytes at a time: each 32-bit word adds its even and odd bytes into two
 * 16-bit lanes (128 words of at most 2 x 255 each stay below 2^16 per lane). Why: every tar
 * header of every layer the unpack walks is checked here (63k on a large layer), and a quarter
 * of the loop iterations is that much less for V8 to run and to optimize.
 */
function wordByteSum(block: Uint8Array): number {
  const words = new Uint32Array(block.buffer, block.byteOffset, BLOCK / 4);
  let lanes = 0;
  for (let i = 0; i < 37; i++) {
    const w = words[i]!;
    lanes += (w & 0x00ff00ff) + ((w >>> 8) & 0x00ff00ff);
  }
  for (let i = 39; i < BLOCK / 4; i++) {
    const w = words[i]!;
    lanes += (w & 0x00ff00ff) + ((w >>> 8) & 0x00ff00ff);
  }
  return (lanes & 0xffff) + Math.floor(lanes / 0x10000);
}

/** The typeflag byte as a one-character string. */
export function typeflagOf(block: Uint8Array): string {
  return String.fromCharCode(block[156]!);
}

/** The size field (octal or base-256); PAX `size` records override it (mergeHeader). */
export function sizeOf(block: Uint8Array, offset: number): number {
  return numericField(block, 124, 12, 'size', offset);
}

function isUstar(block: Uint8Array): boolean {
  return block[257] === 0x75 && block[258] === 0x73 && block[259] === 0x74 && block[260] === 0x61 && block[261] === 0x72;
}

/** The name field, with the USTAR prefix field in front when there is one. */
function nameOf(block: Buffer, ustar: boolean): Buffer {
  const name = cString(block, 0, 100);
  if (ustar && block[262] === 0 && block[345] !== 0) {
    const prefix = cString(block, 345, 155);
    return Buffer.concat([prefix, SLASH, name]);
  }
  return name;
}

/** Parses PAX extended-header content: `LEN key=value\n` records. */
export function parsePaxRecords(data: Buffer, offset: number): Array<[string, Buffer]> {
  const records: Array<[string, Buffer]> = [];
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    if (space === -1) throw new TarFormatError('bad PAX record (no length)', offset);
    const len = Number(data.toString('latin1', pos, space));
    if (!Number.isInteger(len) || len <= 0 || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw new TarFormatError('bad PAX record length', offset);
    }
    const record = data.subarray(space + 1, pos + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq === -1) throw new TarFormatError('bad PAX record (no =)', offset);
    records.push([record.toString('utf8', 0, eq), Buffer.from(record.subarray(eq + 1))]);
    pos += len;
  }
  return records;
}

/** What one 512-byte header block says, before PAX/GNU merging. */
export interface RawHeader {
  name: Buffer;
  linkName: Buffer;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  uname: string;
  gname: string;
  devMajor: number;
  devMinor: number;
}

/** The fields a stream follower needs: where the entry is, what it is, how long its payload is. */
export interface BasicHeader {
  name: Buffer;
  linkName: Buffer;
  typeflag: string;
  size: number;
}

function asBuffer(view: Uint8Array): Buffer {
  return Buffer.isBuffer(view) ? view : Buffer.from(view.buffer, view.byteOffset, view.length);
}

/**
 * Checksum, names, typeflag and size only: what a reader that follows a stream needs per header
 * (the verifying unpack runs this for every entry of every layer; the other fields cost as much
 * again to decode).
 */
export function decodeBasicHeader(view: Uint8Array, offset: number): BasicHeader {
  const block = asBuffer(view);
  if (!checksumOk(block, offset)) throw new TarFormatError('tar header checksum mismatch', offset);
  const typeflag = typeflagOf(block);
  return {
    name: nameOf(block, isUstar(block)),
    linkName: typeflag === '1' || typeflag === '2' ? cString(block, 157, 100) : EMPTY,
    typeflag,
    size: sizeOf(block, offset),
  };
}

export function decodeRawHeader(view: Uint8Array, offset: number): RawHeader {
  const block = asBuffer(view);
  if (!checksumOk(block, offset)) throw new TarFormatError('tar header checksum mismatch', offset);
  const ustar = isUstar(block);
  return {
    name: nameOf(block, ustar),
    linkName: cString(block, 157, 100),
    typeflag: typeflagOf(block),
    mode: numericField(block, 100, 8, 'mode', offset),
    uid: numericField(block, 108, 8, 'uid', offset),
    gid: numericField(block, 116, 8, 'gid', offset),
    size: sizeOf(block, offset),
    mtime: numericField(block, 136, 12, 'mtime', offset),
    uname: cText(block, 265, 32),
    gname: cText(block, 297, 32),
    devMajor: ustar ? numericField(block, 329, 8, 'devmajor', offset) : 0,
    devMinor: ustar ? numericField(block, 337, 8, 'devminor', offset) : 0,
  };
}

/** Folds PAX records and GNU long names into a header of one of the seven eStargz types. */
export function mergeHeader(raw: RawHeader, pax: Array<[string, Buffer]>, gnuName: Buffer | undefined, gnuLink: Buffer | undefined, offset: number): TarEntryHeader {
  const type = TYPEFLAG_TO_TYPE[raw.typeflag];
  if (type === undefined) {
    throw new TarFormatError(`unsupported tar entry type '${raw.typeflag.replace(/[^\x20-\x7e]/g, '?')}' for ${JSON.stringify(raw.name.toString('utf8'))}`, offset);
  }
  const header: TarEntryHeader = {
    ...raw,
    type,
    name: gnuName ?? raw.name,
    linkName: gnuLink ?? raw.linkName,
    pax,
  };
  for (const [key, value] of pax) {
    const text = value.toString('utf8');
    switch (key) {
      case 'path': header.name = value; break;
      case 'linkpath': header.linkName = value; break;
      case 'size': header.size = paxNumber(text, key, offset); break;
      case 'uid': header.uid = paxNumber(text, key, offset); break;
      case 'gid': header.gid = paxNumber(text, key, offset); break;
      case 'uname': header.uname = text; break;
      case 'gname': header.gname = text; break;
      case 'mtime': {
        const t = Number(text);
        if (!Number.isFinite(t)) throw new TarFormatError(`bad PAX mtime ${JSON.stringify(text)}`, offset);
        header.mtime = t;
        break;
      }
      default: break;
    }
  }
  // Go's archive/tar: an old-style (NUL) regular-file flag on a name ending in '/' is a directory.
  if (raw.typeflag === '\0' && header.name.at(-1) === 0x2f) header.type = 'dir';
  // Header-only types carry no payload whatever their size field says (Go's isHeaderOnlyType).
  if (header.type !== 'reg') header.size = 0;
  return header;
}

/** A followed entry: its names, eStargz type ('other' for typeflags eStargz cannot describe) and payload size. */
export interface BasicEntry {
  name: Buffer;
  linkName: Buffer;
  type: EntryType | 'other';
  size: number;
}

/**
 * mergeHeader's folding for a BasicHeader (path, linkpath, size; the same directory and
 * header-only rules), without failing on types eStargz cannot describe: a stream follower passes
 * those through.
 */
export function mergeBasic(basic: BasicHeader, pax: ReadonlyArray<[string, Buffer]>, gnuName: Buffer | undefined, gnuLink: Buffer | undefined, offset: number): BasicEntry {
  let name = gnuName ?? basic.name;
  let linkName = gnuLink ?? basic.linkName;
  let size = basic.size;
  for (const [key, value] of pax) {
    if (key === 'path') name = value;
    else if (key === 'linkpath') linkName = value;
    else if (key === 'size') size = paxNumber(value.toString('latin1'), key, offset);
  }
  let type: EntryType | 'other' = TYPEFLAG_TO_TYPE[basic.typeflag] ?? 'other';
  if (basic.typeflag === '\0' && name.at(-1) === 0x2f) type = 'dir';
  if (type !== 'reg' && isHeaderOnlyTypeflag(basic.typeflag)) size = 0;
  return { name, linkName, type, size };
}

/** The value of a PAX `size` record, or undefined when there is none. */
export function paxSize(pax: ReadonlyArray<[string, Buffer]>, offset: number): number | undefined {
  let size: number | undefined;
  for (const [key, value] of pax) if (key === 'size') size = paxNumber(value.toString('latin1'), key, offset);
  return size;
}

function paxNumber(text: string, key: string, offset: number): number {
  if (!/^\d+$/.test(text)) throw new TarFormatError(`bad PAX ${key} ${JSON.stringify(text)}`, offset);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new TarFormatError(`PAX ${key} too large`, offset);
  return n;
}
