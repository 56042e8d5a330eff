/**
 * Reads a tar file's entries by position: each header (PAX and GNU long names folded in) and
 * where its payload lies. The builder needs positions because eStargz reorders entries
 * (prioritized files first, a later duplicate replaces an earlier one) before writing any.
 */
import fs from 'node:fs';
import { BLOCK, decodeRawHeader, isZeroBlock, mergeHeader, padding, parsePaxRecords, type TarEntryHeader, TarFormatError } from '../../src/tar/header.ts';

export interface IndexedEntry {
  header: TarEntryHeader;
  /** Byte offset of the payload in the tar file. */
  dataOffset: number;
  /** Offset of the entry's first header block (PAX/GNU included), for messages. */
  headerOffset: number;
}

function readExactly(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, buf, got, length - got, position + got);
    if (n === 0) throw new TarFormatError(`unexpected end of tar (wanted ${length} bytes)`, position + got);
    got += n;
  }
  return buf;
}

/** Longest PAX header or GNU long name we accept (they are held in memory). */
const MAX_META = 16 * 1024 * 1024;

export function indexTar(fd: number, fileSize: number): IndexedEntry[] {
  const entries: IndexedEntry[] = [];
  let pos = 0;
  let pax: Array<[string, Buffer]> = [];
  let gnuName: Buffer | undefined;
  let gnuLink: Buffer | undefined;
  let entryStart = 0;
  let pending = false;
  while (pos + BLOCK <= fileSize) {
    const block = readExactly(fd, BLOCK, pos);
    if (isZeroBlock(block)) break;
    if (!pending) entryStart = pos;
    const raw = decodeRawHeader(block, pos);
    const dataOffset = pos + BLOCK;
    const meta = (): Buffer => {
      if (raw.size > MAX_META) throw new TarFormatError(`extension header of ${raw.size} bytes is too large`, pos);
      return readExactly(fd, raw.size, dataOffset);
    };
    switch (raw.typeflag) {
      case 'x':
        pax = [...pax, ...parsePaxRecords(meta(), pos)];
        pending = true;
        pos = dataOffset + raw.size + padding(raw.size);
        continue;
      case 'L': {
        const b = meta();
        const end = b.indexOf(0);
        gnuName = Buffer.from(end === -1 ? b : b.subarray(0, end));
        pending = true;
        pos = dataOffset + raw.size + padding(raw.size);
        continue;
      }
      case 'K': {
        const b = meta();
        const end = b.indexOf(0);
        gnuLink = Buffer.from(end === -1 ? b : b.subarray(0, end));
        pending = true;
        pos = dataOffset + raw.size + padding(raw.size);
        continue;
      }
      case 'g':
        throw new TarFormatError('unsupported tar entry: PAX global header (eStargz cannot carry it)', pos);
      default:
        break;
    }
    const header = mergeHeader(raw, pax, gnuName, gnuLink, pos);
    if (dataOffset + header.size > fileSize) {
      throw new TarFormatError(`payload of ${JSON.stringify(header.name.toString('utf8'))} runs past the end of the tar`, pos);
    }
    entries.push({ header, dataOffset, headerOffset: entryStart });
    pos = dataOffset + header.size + padding(header.size);
    pax = [];
    gnuName = undefined;
    gnuLink = undefined;
    pending = false;
  }
  if (pending) throw new TarFormatError('tar ends after an extension header', pos);
  return entries;
}

export function readPayload(fd: number, offset: number, length: number): Buffer {
  return length === 0 ? Buffer.alloc(0) : readExactly(fd, length, offset);
}
