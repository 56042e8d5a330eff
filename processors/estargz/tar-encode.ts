/**
 * Writing tar headers for eStargz: every byte under our control, because the diff_id is computed
 * over them and the unpack processor must reproduce gunzip(blob) (Go archive/tar's layout:
 * zero-padded NUL-terminated octal, `ustar\x0000`). Reading is src/tar/header.ts.
 */
import { BLOCK, type EntryType, padding, type TarEntryHeader } from '../../src/tar/header.ts';

const TYPE_TO_TYPEFLAG: Readonly<Record<EntryType, string>> = {
  reg: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

export function xattrsOf(header: TarEntryHeader): Array<[string, Buffer]> {
  const prefix = 'SCHILY.xattr.';
  return header.pax.filter(([k]) => k.startsWith(prefix)).map(([k, v]): [string, Buffer] => [k.slice(prefix.length), v]);
}

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
