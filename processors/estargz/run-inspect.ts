/**
 * `outrigger estargz ls BLOB` and `outrigger estargz verify BLOB` for humans.
 *
 * ls reads only the footer and the TOC member, as a lazy puller would. verify runs the same
 * single-pass check as the stream processor over the whole blob and discards the tar.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import zlib from 'node:zlib';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { FOOTER_SIZE, parseFooter } from './footer.ts';
import { parseTocDigest } from './run-unpack.ts';
import { BLOCK, decodeRawHeader } from '../../src/tar/header.ts';
import { parseToc, sha256Digest, TOC_NAME, type Toc } from './toc.ts';
import { MAX_TOC_BYTES } from './tar-walker.ts';
import { Writable } from 'node:stream';
import { UnpackError } from './unpack.ts';
import { unpackAnyLayer } from './unpack-any.ts';
import { FooterError, parseZstdChunkedFooter, SKIPPABLE_MAGIC } from './zstd-chunked-footer.ts';

export interface RawInspectOptions {
  json?: boolean;
  tocDigest?: string;
}

export interface StoredToc {
  kind: 'estargz' | 'legacy' | 'zstd:chunked';
  tocOffset: number;
  json: Buffer;
  toc: Toc;
  digest: string;
}

function readAt(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  const n = fs.readSync(fd, buf, 0, length, position);
  return buf.subarray(0, n);
}

/**
 * zstd:chunked: the last frame is a skippable frame with a 40- or 64-byte footer payload; the
 * TOC is the zstd frame in the skippable frame it points at.
 */
function readZstdChunkedToc(fd: number, size: number): StoredToc {
  for (const payloadSize of [40, 64]) {
    if (size < payloadSize + 8) continue;
    const frame = readAt(fd, payloadSize + 8, size - payloadSize - 8);
    if (!frame.subarray(0, 4).equals(SKIPPABLE_MAGIC) || frame.readUInt32LE(4) !== payloadSize) continue;
    let footer;
    try {
      footer = parseZstdChunkedFooter(frame.subarray(8));
    } catch (err) {
      if (err instanceof FooterError) continue;
      throw err;
    }
    const { offset, length, uncompressedLength } = footer.toc;
    if (offset < 8 || offset + length > size) throw new Error(`the zstd:chunked footer's TOC position ${offset}:${length} is outside the blob (${size} bytes)`);
    const json = zlib.zstdDecompressSync(readAt(fd, length, offset), { maxOutputLength: Math.max(1, uncompressedLength) });
    if (json.length !== uncompressedLength) throw new Error(`the zstd:chunked TOC decompresses to ${json.length} bytes, the footer says ${uncompressedLength}`);
    return { kind: 'zstd:chunked', tocOffset: offset, json, toc: parseToc(json), digest: sha256Digest(json) };
  }
  throw new Error('no zstd:chunked footer (GnUlInUx/GNUlInUx skippable frame) at the end of the blob');
}

/** Reads the TOC through the footer, the way a lazy puller does. */
export function readStoredToc(file: string): StoredToc {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (readAt(fd, 4, 0).equals(Buffer.from('28b52ffd', 'hex'))) return readZstdChunkedToc(fd, size);
    const tail = Buffer.alloc(Math.min(size, FOOTER_SIZE));
    fs.readSync(fd, tail, 0, tail.length, size - tail.length);
    const footer = parseFooter(tail);
    if (!footer) throw new Error('no eStargz or legacy stargz footer at the end of the blob');
    const end = size - footer.size;
    if (footer.tocOffset >= end) throw new Error(`the footer's TOC offset ${footer.tocOffset} is beyond the data (${end} bytes)`);
    const member = Buffer.alloc(end - footer.tocOffset);
    fs.readSync(fd, member, 0, member.length, footer.tocOffset);
    // Bounded: a small member can inflate to gigabytes (a TOC of zeros). Read the entry's
    // declared size from the first block before inflating the whole member.
    const head = zlib.gunzipSync(member.subarray(0, Math.min(member.length, 4096)), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    if (head.length < BLOCK) throw new Error('the TOC member is too short to hold a tar header');
    const declared = decodeRawHeader(head.subarray(0, BLOCK), 0).size;
    if (declared > MAX_TOC_BYTES) throw new Error(`the stargz.index.json TOC entry is ${declared} bytes, larger than the ${MAX_TOC_BYTES / (1024 * 1024)} MiB TOC limit`);
    let tar: Buffer;
    try {
      tar = zlib.gunzipSync(member, { maxOutputLength: declared + 4 * BLOCK + 1024 });
    } catch (err) {
      if (err instanceof RangeError) throw new Error(`the TOC member inflates to more than its ${declared}-byte TOC entry needs`, { cause: err });
      throw err;
    }
    const header = decodeRawHeader(tar.subarray(0, BLOCK), 0);
    if (header.name.toString('utf8') !== TOC_NAME) throw new Error(`the TOC member's first entry is ${JSON.stringify(header.name.toString('utf8'))}, not ${TOC_NAME}`);
    const json = tar.subarray(BLOCK, BLOCK + header.size);
    return { kind: footer.kind, tocOffset: footer.tocOffset, json, toc: parseToc(json), digest: sha256Digest(json) };
  } finally {
    fs.closeSync(fd);
  }
}

function table(toc: Toc): string {
  const rows = toc.entries.map((e) => [
    e.type,
    e.mode !== undefined ? (e.mode & 0o7777).toString(8).padStart(4, '0') : '',
    `${e.uid ?? 0}:${e.gid ?? 0}`,
    e.type === 'chunk' ? `+${e.chunkOffset ?? 0}` : String(e.size ?? ''),
    String(e.offset ?? ''),
    e.type === 'chunk' ? '' : e.name + (e.linkName ? ` -> ${e.linkName}` : ''),
  ]);
  const head = ['TYPE', 'MODE', 'UID:GID', 'SIZE', 'OFFSET', 'NAME'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export async function runLs(blob: string, opts: RawInspectOptions): Promise<void> {
  let stored: StoredToc;
  try {
    stored = readStoredToc(blob);
  } catch (err) {
    throw new CliError(`estargz ls ${blob}: ${(err as Error).message}`, ExitCode.failure, { cause: err });
  }
  if (opts.json) {
    process.stdout.write(stored.json);
    process.stdout.write('\n');
    return;
  }
  process.stdout.write(`# ${stored.kind} TOC at offset ${stored.tocOffset}, digest ${stored.digest}, ${stored.toc.entries.length} entries\n`);
  process.stdout.write(`${table(stored.toc)}\n`);
}

export async function runVerify(blob: string, opts: RawInspectOptions): Promise<void> {
  const tocDigest = parseTocDigest(opts.tocDigest, '--toc-digest');
  let result;
  const diffId = createHash('sha256');
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      diffId.update(chunk);
      done();
    },
  });
  try {
    result = await unpackAnyLayer(fs.createReadStream(blob, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>, sink, { tocDigest, chunkSize: 1 << 20 });
  } catch (err) {
    if (err instanceof UnpackError || (err as NodeJS.ErrnoException).code !== undefined) {
      throw new CliError(`estargz verify ${blob}: ${(err as Error).message}`, ExitCode.failure, { cause: err });
    }
    throw err;
  }
  if (result.format === 'gzip' || result.format === 'zstd') {
    throw new CliError(`estargz verify ${blob}: not an eStargz or zstd:chunked layer (a plain ${result.format} stream, no footer)`, ExitCode.failure);
  }
  const v = result.verified!;
  process.stdout.write(
    `${JSON.stringify({ ok: true, format: result.format, tocDigest: result.tocDigest, diffId: `sha256:${diffId.digest('hex')}`, uncompressedSize: result.outputBytes, entries: v.entries, files: v.files, chunks: v.chunks, chunkDigestsChecked: v.chunkDigestsChecked, chunksCoveredByFileDigest: v.chunksCoveredByFileDigest })}\n`,
  );
}
