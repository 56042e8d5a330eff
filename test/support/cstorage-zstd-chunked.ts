/**
 * containers/storage's zstd:chunked layout, written independently of processors/estargz for the
 * tests (Debian has no producer of the current 64-byte-footer variant; skopeo 1.9 writes the
 * older 40-byte one and is used where it is installed). Facts: ../shared/reference/estargz.md
 * §7.1 and containers/storage pkg/chunked/compressor/compressor.go (writeZstdChunkedStream):
 *
 * - the tar is copied losslessly: header blocks (extension headers included) go into the frame
 *   that is open, a payload starts a new frame, each chunk ends its frame, so padding and the
 *   next headers share a frame with nothing else; the end-of-archive bytes close the last frame;
 * - TOC entries (minimal.FileMetadata): one per tar entry, `reg` with digest/offset/endOffset,
 *   and for files of several chunks chunkSize/chunkOffset/chunkDigest/chunkType on the reg entry
 *   and one `chunk` entry per further chunk; runs of zeros are `chunkType: "zeros"` chunks;
 * - then skippable frames: the TOC (compact JSON, zstd), the tar-split (64-byte variant only;
 *   its digest is the TOC's tarSplitDigest), and the footer.
 *
 * Chunks here are cut at a fixed size (and around runs of zeros) instead of by rolling checksum:
 * the verifier only relies on chunks starting frames.
 */
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';

export interface CStorageOptions {
  /** Largest chunk (containers/storage's rolling checksum averages 64 KiB). */
  chunkSize: number;
  /** 64: GNUlInUx footer with tar-split (current); 40: GnUlInUx footer, no tar-split (older, skopeo 1.9). */
  footer: 40 | 64;
  /** Write zstd content checksums (containers/storage does); off to let only the TOC catch changes. */
  checksum?: boolean;
  /** Flip the first byte of the n-th chunk's data after its digest was taken. */
  corruptChunk?: number;
}

export interface CStorageLayer {
  blob: Buffer;
  /** sha256 of the uncompressed TOC JSON. */
  tocDigest: string;
  /** sha256 of the compressed TOC (io.github.containers.zstd-chunked.manifest-checksum). */
  manifestChecksum: string;
  toc: { version: number; entries: Array<Record<string, unknown>>; tarSplitDigest?: string };
  /** Chunks written (files' payload pieces). */
  chunks: number;
}

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const SKIPPABLE = Buffer.from('502a4d18', 'hex');

function skippable(payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  SKIPPABLE.copy(h);
  h.writeUInt32LE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

function octal(block: Buffer, start: number, length: number): number {
  const text = block.toString('latin1', start, start + length).replace(/[\0 ]+$/, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function cstr(block: Buffer, start: number, length: number): Buffer {
  const end = block.indexOf(0, start);
  return block.subarray(start, end === -1 || end > start + length ? start + length : end);
}

function paxRecords(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length && data[pos] !== 0) {
    const space = data.indexOf(0x20, pos);
    const len = Number(data.toString('latin1', pos, space));
    const record = data.subarray(space + 1, pos + len - 1);
    const eq = record.indexOf(0x3d);
    out.set(record.toString('utf8', 0, eq), Buffer.from(record.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

const TYPES: Record<string, string> = { '0': 'reg', '\0': 'reg', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo' };

/** Pieces of a payload: fixed-size data chunks, with runs of ≥ 1024 zero bytes as their own "zeros" chunks. */
function pieces(payload: Buffer, chunkSize: number): Array<{ start: number; end: number; zeros: boolean }> {
  const out: Array<{ start: number; end: number; zeros: boolean }> = [];
  let at = 0;
  while (at < payload.length) {
    let z = at;
    while (z < payload.length && payload[z] === 0) z++;
    if (z - at >= 1024) {
      out.push({ start: at, end: z, zeros: true });
      at = z;
      continue;
    }
    let end = Math.min(payload.length, at + chunkSize);
    // Stop a data chunk where a long run of zeros begins.
    for (let k = at + 1; k < end && k + 1024 <= payload.length; k++) {
      if (payload[k] === 0 && payload.subarray(k, k + 1024).every((b) => b === 0)) {
        end = k;
        break;
      }
    }
    out.push({ start: at, end, zeros: false });
    at = end;
  }
  return out;
}

export function makeCStorageZstdChunked(tar: Buffer, opts: CStorageOptions): CStorageLayer {
  const params = { params: { [zlib.constants.ZSTD_c_compressionLevel]: 3, [zlib.constants.ZSTD_c_checksumFlag]: opts.checksum === false ? 0 : 1 } };
  const frames: Buffer[] = [];
  let written = 0;
  let open: Buffer[] = [];
  /** Closes the open frame (if it holds anything); returns the offset where the next frame starts. */
  const restart = (): number => {
    if (open.length > 0) {
      const frame = zlib.zstdCompressSync(Buffer.concat(open), params);
      frames.push(frame);
      written += frame.length;
      open = [];
    }
    return written;
  };
  const entries: Array<Record<string, unknown>> = [];
  let chunkCount = 0;
  let pos = 0;
  let pax = new Map<string, Buffer>();
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;
  while (pos + 512 <= tar.length) {
    const block = tar.subarray(pos, pos + 512);
    if (block.every((b) => b === 0)) break;
    const typeflag = String.fromCharCode(block[156]!);
    let size = octal(block, 124, 12);
    const dataEnd = (n: number): number => pos + 512 + n + ((512 - (n % 512)) % 512);
    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      const data = tar.subarray(pos + 512, pos + 512 + size);
      if (typeflag === 'x') pax = new Map([...pax, ...paxRecords(data)]);
      if (typeflag === 'L') longName = cstr(data, 0, data.length);
      if (typeflag === 'K') longLink = cstr(data, 0, data.length);
      open.push(tar.subarray(pos, dataEnd(size)));
      pos = dataEnd(size);
      continue;
    }
    const prefix = block[345] !== 0 ? `${cstr(block, 345, 155).toString('utf8')}/` : '';
    const name = (pax.get('path') ?? longName)?.toString('utf8') ?? prefix + cstr(block, 0, 100).toString('utf8');
    const linkName = (pax.get('linkpath') ?? longLink)?.toString('utf8') ?? cstr(block, 157, 100).toString('utf8');
    if (pax.has('size')) size = Number(pax.get('size')!.toString());
    const type = TYPES[typeflag] ?? 'reg';
    if (type !== 'reg') size = 0;
    pax = new Map();
    longName = undefined;
    longLink = undefined;
    open.push(block);
    const entry: Record<string, unknown> = {
      type,
      name,
      ...(linkName ? { linkName } : {}),
      mode: octal(block, 100, 8),
      ...(size ? { size } : {}),
      ...(octal(block, 108, 8) ? { uid: octal(block, 108, 8) } : {}),
      ...(octal(block, 116, 8) ? { gid: octal(block, 116, 8) } : {}),
      modtime: new Date(octal(block, 136, 12) * 1000).toISOString(),
      accesstime: '0001-01-01T00:00:00Z',
      changetime: '0001-01-01T00:00:00Z',
    };
    const payload = Buffer.from(tar.subarray(pos + 512, pos + 512 + size));
    const group: Array<Record<string, unknown>> = [entry];
    if (size > 0) {
      const startOffset = restart();
      let lastOffset = startOffset;
      const list = pieces(payload, opts.chunkSize);
      const chunks: Array<Record<string, unknown>> = [];
      for (const p of list) {
        const data = Buffer.from(payload.subarray(p.start, p.end));
        const chunkDigest = sha256(data);
        if (opts.corruptChunk === chunkCount) data[0]! ^= 0x01;
        chunkCount++;
        open.push(data);
        const next = restart();
        chunks.push({ offset: lastOffset, chunkOffset: p.start, chunkSize: p.end - p.start, chunkDigest, ...(p.zeros ? { chunkType: 'zeros' } : {}) });
        lastOffset = next;
      }
      entry.digest = sha256(payload);
      entry.offset = startOffset;
      entry.endOffset = lastOffset;
      if (chunks.length > 1) {
        chunks.forEach((c, i) => {
          const target = i === 0 ? entry : { type: 'chunk', name };
          if (i > 0) group.push(target);
          Object.assign(target, { offset: c.offset, chunkSize: c.chunkSize, chunkDigest: c.chunkDigest, ...(c.chunkOffset ? { chunkOffset: c.chunkOffset } : {}), ...(c.chunkType ? { chunkType: c.chunkType } : {}) });
        });
      }
      open.push(tar.subarray(pos + 512 + size, dataEnd(size)));
    }
    entries.push(...group);
    pos = dataEnd(size);
  }
  open.push(tar.subarray(pos));
  restart();
  const tail: Buffer[] = [];
  const toc: CStorageLayer['toc'] = { version: 1, entries };
  let tarSplit: Buffer | undefined;
  if (opts.footer === 64) {
    tarSplit = zlib.zstdCompressSync(Buffer.from(entries.map((e) => JSON.stringify({ type: 1, name: e.name })).join('\n')), params);
    toc.tarSplitDigest = sha256(tarSplit);
  }
  const json = Buffer.from(JSON.stringify(toc));
  const compressedToc = zlib.zstdCompressSync(json, params);
  const tocOffset = written + 8;
  tail.push(skippable(compressedToc));
  const fields = [tocOffset, compressedToc.length, json.length, 1];
  if (tarSplit) {
    const tarSplitOffset = tocOffset + compressedToc.length + 8;
    tail.push(skippable(tarSplit));
    fields.push(tarSplitOffset, tarSplit.length, 1000);
  }
  const footer = Buffer.alloc(opts.footer);
  fields.forEach((v, i) => footer.writeBigUInt64LE(BigInt(v), i * 8));
  footer.write(opts.footer === 64 ? 'GNUlInUx' : 'GnUlInUx', opts.footer - 8, 'latin1');
  tail.push(skippable(footer));
  return { blob: Buffer.concat([...frames, ...tail]), tocDigest: sha256(json), manifestChecksum: sha256(compressedToc), toc, chunks: chunkCount };
}
