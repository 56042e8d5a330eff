/**
 * Tar header decoding and encoding for eStargz.
 *
 * Our own instead of tar-stream's because the builder needs what tar-stream normalises away: the
 * raw mode field (the TOC stores it verbatim, S_IFMT bits included), the raw PAX record list (so
 * records are carried through in order), and exact control over every byte we write (the unpack
 * processor must reproduce gunzip(blob), and the diff_id is computed over our headers). Tests use
 * tar-stream as the independent reader/writer.
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

const TYPE_TO_TYPEFLAG: Readonly<Record<EntryType, string>> = {
  reg: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

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

// These two run for every header of every layer the processor passes, so they scan bytes
// in place instead of making Buffer views and strings.
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

const isPad = (c: number): boolean => c === 0 || c === 0x20;

/** Octal (space/NUL terminated) or GNU base-256 numeric field. */
function numeric(block: Uint8Array, start: number, length: number, what: string, offset: number): number {
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

function checksumOk(block: Uint8Array, offset: number): boolean {
  const stored = numeric(block, 148, 8, 'checksum', offset);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum === stored;
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

export function decodeRawHeader(view: Uint8Array, offset: number): RawHeader {
  const block = Buffer.isBuffer(view) ? view : Buffer.from(view.buffer, view.byteOffset, view.length);
  if (!checksumOk(block, offset)) throw new TarFormatError('tar header checksum mismatch', offset);
  let name = cString(block, 0, 100);
  const ustar = block[257] === 0x75 && block[258] === 0x73 && block[259] === 0x74 && block[260] === 0x61 && block[261] === 0x72;
  if (ustar && block[262] === 0) {
    const prefix = cString(block, 345, 155);
    if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  }
  return {
    name,
    linkName: cString(block, 157, 100),
    typeflag: String.fromCharCode(block[156]!),
    mode: numeric(block, 100, 8, 'mode', offset),
    uid: numeric(block, 108, 8, 'uid', offset),
    gid: numeric(block, 116, 8, 'gid', offset),
    size: numeric(block, 124, 12, 'size', offset),
    mtime: numeric(block, 136, 12, 'mtime', offset),
    uname: cText(block, 265, 32),
    gname: cText(block, 297, 32),
    devMajor: ustar ? numeric(block, 329, 8, 'devmajor', offset) : 0,
    devMinor: ustar ? numeric(block, 337, 8, 'devminor', offset) : 0,
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

function paxNumber(text: string, key: string, offset: number): number {
  if (!/^\d+$/.test(text)) throw new TarFormatError(`bad PAX ${key} ${JSON.stringify(text)}`, offset);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new TarFormatError(`PAX ${key} too large`, offset);
  return n;
}

export function xattrsOf(header: TarEntryHeader): Array<[string, Buffer]> {
  const prefix = 'SCHILY.xattr.';
  return header.pax.filter(([k]) => k.startsWith(prefix)).map(([k, v]): [string, Buffer] => [k.slice(prefix.length), v]);
}

// ---------------------------------------------------------------------------------------------
// Encoding

function putString(block: Buffer, start: number, length: number, value: Buffer): void {
  value.copy(block, start, 0, Math.min(length, value.length));
}

function putOctal(block: Buffer, start: number, length: number, value: number): void {
  // length-1 digits, NUL terminated, zero-padded (Go's archive/tar style).
  block.write(value.toString(8).padStart(length - 1, '0') + '\0', start, length, 'latin1');
}

function fitsOctal(value: number, length: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value < 8 ** (length - 1);
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

function isAscii(b: Buffer): boolean {
  for (const c of b) if (c >= 0x80) return false;
  return true;
}

/** Splits a name into USTAR prefix/name fields, or undefined when it cannot be split. */
function splitUstarName(name: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (name.length <= 100) return { prefix: Buffer.alloc(0), name };
  if (name.length > 256) return undefined;
  for (let i = Math.max(0, name.length - 101); i < Math.min(name.length, 156); i++) {
    if (name[i] === 0x2f && i > 0 && name.length - i - 1 <= 100 && name.length - i - 1 > 0) {
      return { prefix: name.subarray(0, i), name: name.subarray(i + 1) };
    }
  }
  return undefined;
}

function ustarBlock(fields: {
  name: Buffer; prefix: Buffer; linkName: Buffer; typeflag: string; mode: number; uid: number; gid: number;
  size: number; mtime: number; uname: string; gname: string; devMajor: number; devMinor: number;
}): Buffer {
  const block = Buffer.alloc(BLOCK);
  putString(block, 0, 100, fields.name);
  putOctal(block, 100, 8, fields.mode);
  putOctal(block, 108, 8, fields.uid);
  putOctal(block, 116, 8, fields.gid);
  putOctal(block, 124, 12, fields.size);
  putOctal(block, 136, 12, fields.mtime);
  block.write(fields.typeflag, 156, 1, 'latin1');
  putString(block, 157, 100, fields.linkName);
  block.write('ustar\x0000', 257, 8, 'latin1');
  putString(block, 265, 32, Buffer.from(fields.uname, 'utf8'));
  putString(block, 297, 32, Buffer.from(fields.gname, 'utf8'));
  putOctal(block, 329, 8, fields.devMajor);
  putOctal(block, 337, 8, fields.devMinor);
  putString(block, 345, 155, fields.prefix);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of block) sum += c;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return block;
}

/**
 * Encodes one entry as USTAR, preceded by a PAX extended header when the input had PAX records
 * or a value does not fit USTAR. Deterministic: the same header always gives the same bytes.
 */
export function encodeHeader(h: TarEntryHeader): Buffer {
  const pax = new Map<string, Buffer>(h.pax);
  const split = isAscii(h.name) ? splitUstarName(h.name) : undefined;
  if (!split) pax.set('path', h.name);
  if (h.linkName.length > 100 || !isAscii(h.linkName)) pax.set('linkpath', h.linkName);
  const mtimeSeconds = Math.floor(h.mtime);
  if (!fitsOctal(h.size, 12)) pax.set('size', Buffer.from(String(h.size)));
  if (!fitsOctal(h.uid, 8)) pax.set('uid', Buffer.from(String(h.uid)));
  if (!fitsOctal(h.gid, 8)) pax.set('gid', Buffer.from(String(h.gid)));
  if (!fitsOctal(mtimeSeconds, 12) && !pax.has('mtime')) pax.set('mtime', Buffer.from(String(h.mtime)));
  if (Buffer.byteLength(h.uname) > 32) pax.set('uname', Buffer.from(h.uname));
  if (Buffer.byteLength(h.gname) > 32) pax.set('gname', Buffer.from(h.gname));
  const main = ustarBlock({
    name: split ? split.name : h.name.subarray(0, 100),
    prefix: split ? split.prefix : Buffer.alloc(0),
    linkName: h.linkName.subarray(0, 100),
    typeflag: TYPE_TO_TYPEFLAG[h.type],
    mode: fitsOctal(h.mode, 8) ? h.mode : h.mode & 0o7777777,
    uid: fitsOctal(h.uid, 8) ? h.uid : 0,
    gid: fitsOctal(h.gid, 8) ? h.gid : 0,
    size: fitsOctal(h.size, 12) ? h.size : 0,
    mtime: fitsOctal(mtimeSeconds, 12) ? mtimeSeconds : 0,
    uname: Buffer.byteLength(h.uname) > 32 ? '' : h.uname,
    gname: Buffer.byteLength(h.gname) > 32 ? '' : h.gname,
    devMajor: fitsOctal(h.devMajor, 8) ? h.devMajor : 0,
    devMinor: fitsOctal(h.devMinor, 8) ? h.devMinor : 0,
  });
  if (pax.size === 0) return main;
  const body = Buffer.concat([...pax].map(([k, v]) => paxRecord(k, v)));
  const paxName = Buffer.from(`PaxHeaders/${split ? split.name.toString('latin1') : 'entry'}`.slice(0, 100), 'latin1');
  const paxHeader = ustarBlock({
    name: paxName, prefix: Buffer.alloc(0), linkName: Buffer.alloc(0), typeflag: 'x', mode: 0o644, uid: 0, gid: 0,
    size: body.length, mtime: 0, uname: '', gname: '', devMajor: 0, devMinor: 0,
  });
  return Buffer.concat([paxHeader, body, Buffer.alloc(padding(body.length)), main]);
}

/** Zero bytes that follow `size` bytes of payload to reach the next block. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * A bare USTAR header with only name, typeflag 0 and size set: what the landmark files and the
 * `stargz.index.json` entry use (../shared/reference/estargz.md §1.2, §4).
 */
export function bareFileHeader(name: string, size: number): Buffer {
  return ustarBlock({
    name: Buffer.from(name), prefix: Buffer.alloc(0), linkName: Buffer.alloc(0), typeflag: '0', mode: 0, uid: 0, gid: 0,
    size, mtime: 0, uname: '', gname: '', devMajor: 0, devMinor: 0,
  });
}
