/**
 * tar → eStargz (../shared/reference/estargz.md §1–§4).
 *
 * Layout, as stargz-snapshotter's estargz writer does it: tar headers go into the gzip member
 * that is open; every chunk of a non-empty regular file starts a new member, which then also
 * takes the payload's padding and the following headers. The TOC is one more member holding a
 * tar with the single entry `stargz.index.json` plus the end-of-archive marker, and the 51-byte
 * footer points at it. With `compression: 'zstdchunked'` the same layout uses zstd frames
 * (stargz-snapshotter's zstd:chunked, §7.2).
 *
 * Members are compressed independently, so they go to node:zlib's thread pool in parallel (a
 * window of them in flight, written in order): the output is the same bytes whatever the core
 * count, unlike upstream's parallel Build.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { encodeFooter } from './footer.ts';
import { indexTar, type IndexedEntry, readPayload } from './tar-index.ts';
import { BLOCK, padding, type TarEntryHeader } from '../../src/tar/header.ts';
import { bareFileHeader, encodeHeader, xattrsOf } from './tar-encode.ts';
import { encodeZstdChunkedFooter, MANIFEST_TYPE_CRFS, skippableFrame } from './zstd-chunked-footer.ts';
import {
  assertInsideLayer, cleanName, DEFAULT_CHUNK_SIZE, LANDMARK_CONTENT, LANDMARK_NO_PREFETCH, LANDMARK_PREFETCH, serializeToc, sha256Digest,
  TOC_NAME, type TocEntry,
} from './toc.ts';

const gzip = promisify(zlib.gzip);
const zstdCompress = promisify(zlib.zstdCompress);

export const ANNOTATION_TOC_DIGEST = 'containerd.io/snapshot/stargz/toc.digest';
export const ANNOTATION_UNCOMPRESSED_SIZE = 'io.containers.estargz.uncompressed-size';
export const GZIP_LAYER_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const ZSTD_LAYER_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar+zstd';
/** stargz-snapshotter's (old, un-prefixed) zstd:chunked annotation names (estargz.md §7.2). */
export const ANNOTATION_ZSTD_MANIFEST_CHECKSUM = 'io.containers.zstd-chunked.manifest-checksum';
export const ANNOTATION_ZSTD_MANIFEST_POSITION = 'io.containers.zstd-chunked.manifest-position';

export type LayerCompression = 'gzip' | 'zstdchunked';

export interface BuildOptions {
  /** Bytes per chunk; default 4 MiB as upstream. */
  chunkSize?: number;
  /** gzip 0-9 (default 9, gzip.BestCompression) or zstd 1-22 (default 3), as upstream. */
  level?: number;
  /**
   * 'gzip' (eStargz) or 'zstdchunked': stargz-snapshotter's zstd:chunked (`ctr-remote convert
   * --zstdchunked`): zstd frames where eStargz has gzip members, the TOC in a skippable frame
   * instead of a tar entry, a 40-byte footer frame, no end-of-archive marker (estargz.md §7.2).
   */
  compression?: LayerCompression;
  /** Paths to put first, then `.prefetch.landmark`. Without: `.no.prefetch.landmark` first. */
  prioritizedFiles?: readonly string[];
  /** Members compressed at once; default 2 × available cores. */
  parallelism?: number;
  /** Called after each member is written (progress display). */
  onProgress?: (done: { inputBytes: number; outputBytes: number }) => void;
}

export interface BuildReport {
  mediaType: string;
  /** sha256 of the uncompressed TOC JSON: the `toc.digest` annotation. */
  tocDigest: string;
  /** sha256 of the whole decompressed blob: the config's diff_id (zstd:chunked: without the TOC). */
  diffId: string;
  /** Length of the whole decompressed blob. */
  uncompressedSize: number;
  blobDigest: string;
  blobSize: number;
  /** Where the TOC starts: its gzip member, or (zstd:chunked) its zstd frame inside the skippable frame. */
  tocOffset: number;
  /** TOC entries, chunk entries included. */
  tocEntries: number;
  chunkSize: number;
  level: number;
  annotations: Record<string, string>;
}

export class BuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BuildError';
  }
}

const utf8 = new TextDecoder('utf-8');

function text(b: Buffer): string {
  return utf8.decode(b);
}

/**
 * RFC 3339 in UTC rounded to the second; undefined when the time's Unix second is 0 (Go's
 * formatModtime: `t.Unix() == 0` is tested before rounding).
 */
function modtime(seconds: number): string | undefined {
  if (Math.floor(seconds) === 0) return undefined;
  const rounded = Math.round(seconds);
  const iso = new Date(rounded * 1000).toISOString();
  return iso.replace(/\.\d{3}Z$/, 'Z');
}

/** Applies upstream's input clean-up and ordering (estargz.md §4). */
export function orderEntries(
  entries: readonly IndexedEntry[],
  prioritized: readonly string[] | undefined,
): { order: IndexedEntry[]; landmark: string; prioritizedCount: number } {
  const lastIndex = new Map<string, number>();
  entries.forEach((e, i) => {
    assertInsideLayer(text(e.header.name), `input tar entry ${i}`);
    lastIndex.set(cleanName(text(e.header.name)), i);
  });
  const kept = entries.filter((e, i) => {
    const name = cleanName(text(e.header.name));
    if (name === LANDMARK_PREFETCH || name === LANDMARK_NO_PREFETCH || name === TOC_NAME) return false;
    return lastIndex.get(name) === i;
  });
  if (!prioritized || prioritized.length === 0) return { order: kept, landmark: LANDMARK_NO_PREFETCH, prioritizedCount: 0 };

  const byName = new Map(kept.map((e) => [cleanName(text(e.header.name)), e]));
  const moved = new Set<IndexedEntry>();
  const front: IndexedEntry[] = [];
  const move = (name: string, depth: number): void => {
    const entry = byName.get(name);
    if (!entry) throw new BuildError(`prioritized file ${JSON.stringify(name)} is not in the input tar`);
    if (moved.has(entry)) return;
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = byName.get(parts.slice(0, i).join('/'));
      if (parent && !moved.has(parent)) {
        moved.add(parent);
        front.push(parent);
      }
    }
    if (entry.header.type === 'hardlink') {
      if (depth > 64) throw new BuildError(`hardlink chain too deep at ${JSON.stringify(name)}`);
      move(cleanName(text(entry.header.linkName)), depth + 1);
    }
    if (!moved.has(entry)) {
      moved.add(entry);
      front.push(entry);
    }
  };
  for (const p of prioritized) {
    const name = cleanName(p);
    if (name === '') continue;
    move(name, 0);
  }
  return { order: [...front, ...kept.filter((e) => !moved.has(e))], landmark: LANDMARK_PREFETCH, prioritizedCount: front.length };
}

interface PendingOffset {
  entry: TocEntry;
  member: number;
}

/** Collects uncompressed member bytes, compresses members in parallel and writes them in order. */
class MemberPipeline {
  private current: Buffer[] = [];
  private currentLength = 0;
  private readonly inFlight: Array<Promise<Buffer>> = [];
  private readonly window: number;
  private readonly sink: (chunk: Buffer) => Promise<void>;
  readonly diffId = createHash('sha256');
  readonly blobHash = createHash('sha256');
  uncompressedSize = 0;
  /** Compressed offset of every member written so far, by member index. */
  readonly memberOffsets: number[] = [];
  written = 0;
  /** Index the member being filled will get. */
  memberIndex = 0;
  private readonly onWritten: () => void;

  private readonly compress: (data: Buffer) => Promise<Buffer>;

  constructor(compress: (data: Buffer) => Promise<Buffer>, window: number, sink: (chunk: Buffer) => Promise<void>, onWritten: () => void) {
    this.compress = compress;
    this.window = window;
    this.sink = sink;
    this.onWritten = onWritten;
  }

  append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.current.push(bytes);
    this.currentLength += bytes.length;
    this.diffId.update(bytes);
    this.uncompressedSize += bytes.length;
  }

  /** Closes the open member (if it has bytes) so the next append starts a new one. */
  async cut(): Promise<void> {
    if (this.currentLength === 0) return;
    const data = this.current.length === 1 ? this.current[0]! : Buffer.concat(this.current, this.currentLength);
    this.current = [];
    this.currentLength = 0;
    this.memberIndex++;
    this.inFlight.push(this.compress(data));
    while (this.inFlight.length >= this.window) await this.writeOldest();
  }

  private async writeOldest(): Promise<void> {
    const member = await this.inFlight.shift()!;
    this.memberOffsets.push(this.written);
    await this.writeRaw(member);
    this.onWritten();
  }

  async writeRaw(bytes: Buffer): Promise<void> {
    this.blobHash.update(bytes);
    this.written += bytes.length;
    await this.sink(bytes);
  }

  async drain(): Promise<void> {
    await this.cut();
    while (this.inFlight.length > 0) await this.writeOldest();
  }
}

function tocEntryFor(h: TarEntryHeader, users: Map<number, string>, groups: Map<number, string>): TocEntry {
  const entry: TocEntry = { name: text(h.name), type: h.type };
  if (h.type === 'reg') entry.size = h.size;
  entry.modtime = modtime(h.mtime);
  if (h.type === 'symlink' || h.type === 'hardlink') entry.linkName = text(h.linkName);
  entry.mode = h.mode;
  entry.uid = h.uid;
  entry.gid = h.gid;
  if ((users.get(h.uid) ?? '') !== h.uname) {
    entry.userName = h.uname;
    users.set(h.uid, h.uname);
  }
  if ((groups.get(h.gid) ?? '') !== h.gname) {
    entry.groupName = h.gname;
    groups.set(h.gid, h.gname);
  }
  if (h.type === 'char' || h.type === 'block') {
    entry.devMajor = h.devMajor;
    entry.devMinor = h.devMinor;
  }
  const xattrs = xattrsOf(h);
  if (xattrs.length > 0) entry.xattrs = Object.fromEntries(xattrs.map(([k, v]) => [k, v.toString('base64')]));
  return entry;
}

function landmarkHeader(name: string): TarEntryHeader {
  return {
    name: Buffer.from(name), linkName: Buffer.alloc(0), type: 'reg', mode: 0, uid: 0, gid: 0, size: LANDMARK_CONTENT.length,
    mtime: 0, uname: '', gname: '', devMajor: 0, devMinor: 0, pax: [],
  };
}

/**
 * Builds the blob from a plain tar file (`fd`, `size` bytes) and hands it to `sink` in order.
 */
export async function buildEstargz(fd: number, size: number, sink: (chunk: Buffer) => Promise<void>, opts: BuildOptions = {}): Promise<BuildReport> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const zstd = opts.compression === 'zstdchunked';
  const level = opts.level ?? (zstd ? 3 : 9);
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new BuildError(`chunk size must be a positive integer, got ${chunkSize}`);
  if (!zstd && (!Number.isInteger(level) || level < 0 || level > 9)) throw new BuildError(`gzip level must be 0-9, got ${level}`);
  if (zstd && (!Number.isInteger(level) || level < 1 || level > 22)) throw new BuildError(`zstd level must be 1-22, got ${level}`);
  const zstdParams = {
    params: { [zlib.constants.ZSTD_c_compressionLevel]: level, [zlib.constants.ZSTD_c_checksumFlag]: 1 },
  };
  const compress = zstd ? (data: Buffer) => zstdCompress(data, zstdParams) : (data: Buffer) => gzip(data, { level });
  const { order, landmark, prioritizedCount } = orderEntries(indexTar(fd, size), opts.prioritizedFiles);

  let inputDone = 0;
  const pipeline = new MemberPipeline(compress, opts.parallelism ?? Math.max(2, 2 * os.availableParallelism()), sink, () =>
    opts.onProgress?.({ inputBytes: inputDone, outputBytes: pipeline.written }),
  );
  const tocEntries: TocEntry[] = [];
  const pending: PendingOffset[] = [];
  const users = new Map<number, string>();
  const groups = new Map<number, string>();

  const writeEntry = async (h: TarEntryHeader, content: (offset: number, length: number) => Buffer): Promise<void> => {
    pipeline.append(encodeHeader(h));
    const entry = tocEntryFor(h, users, groups);
    tocEntries.push(entry);
    if (h.type !== 'reg') return;
    const whole = createHash('sha256');
    if (h.size === 0) {
      entry.digest = sha256Digest(Buffer.alloc(0));
      return;
    }
    for (let at = 0; at < h.size; at += chunkSize) {
      const length = Math.min(chunkSize, h.size - at);
      const piece = content(at, length);
      whole.update(piece);
      await pipeline.cut();
      const target: TocEntry = at === 0 ? entry : { name: entry.name, type: 'chunk' };
      if (at !== 0) {
        target.chunkOffset = at;
        tocEntries.push(target);
      }
      pending.push({ entry: target, member: pipeline.memberIndex });
      if (length === chunkSize) target.chunkSize = chunkSize;
      target.chunkDigest = sha256Digest(piece);
      pipeline.append(piece);
      inputDone += length;
    }
    entry.digest = `sha256:${whole.digest('hex')}`;
    pipeline.append(Buffer.alloc(padding(h.size)));
  };

  const landmarkEntry = async (): Promise<void> => writeEntry(landmarkHeader(landmark), () => LANDMARK_CONTENT);
  if (landmark === LANDMARK_NO_PREFETCH) await landmarkEntry();
  let landmarkWritten = landmark === LANDMARK_NO_PREFETCH;
  for (let i = 0; i < order.length; i++) {
    if (!landmarkWritten && i === prioritizedCount) {
      await landmarkEntry();
      landmarkWritten = true;
    }
    const e = order[i]!;
    await writeEntry(e.header, (offset, length) => readPayload(fd, e.dataOffset + offset, length));
  }
  if (!landmarkWritten) await landmarkEntry();
  await pipeline.drain();

  for (const p of pending) {
    const offset = pipeline.memberOffsets[p.member];
    if (offset === undefined) throw new Error(`internal: member ${p.member} has no offset`);
    p.entry.offset = offset;
  }
  let tocOffset = pipeline.written;
  const json = serializeToc({ version: 1, entries: tocEntries });
  const zstdAnnotations: Record<string, string> = {};
  if (zstd) {
    // The TOC is no tar entry: one zstd frame in a skippable frame, then the footer frame.
    const compressed = zlib.zstdCompressSync(json, zstdParams);
    await pipeline.writeRaw(skippableFrame(compressed));
    tocOffset += 8;
    const toc = { offset: tocOffset, length: compressed.length, uncompressedLength: json.length };
    await pipeline.writeRaw(encodeZstdChunkedFooter({ size: 40, toc, manifestType: MANIFEST_TYPE_CRFS }));
    zstdAnnotations[ANNOTATION_ZSTD_MANIFEST_CHECKSUM] = sha256Digest(compressed);
    zstdAnnotations[ANNOTATION_ZSTD_MANIFEST_POSITION] = `${tocOffset}:${compressed.length}:${json.length}:1`;
  } else {
    const tocTar = Buffer.concat([bareFileHeader(TOC_NAME, json.length), json, Buffer.alloc(padding(json.length) + 2 * BLOCK)]);
    pipeline.append(tocTar);
    await pipeline.drain();
    await pipeline.writeRaw(encodeFooter(tocOffset));
  }

  const tocDigest = sha256Digest(json);
  return {
    mediaType: zstd ? ZSTD_LAYER_MEDIA_TYPE : GZIP_LAYER_MEDIA_TYPE,
    tocDigest,
    diffId: `sha256:${pipeline.diffId.digest('hex')}`,
    uncompressedSize: pipeline.uncompressedSize,
    blobDigest: `sha256:${pipeline.blobHash.digest('hex')}`,
    blobSize: pipeline.written,
    tocOffset,
    tocEntries: tocEntries.length,
    chunkSize,
    level,
    annotations: {
      [ANNOTATION_TOC_DIGEST]: tocDigest,
      [ANNOTATION_UNCOMPRESSED_SIZE]: String(pipeline.uncompressedSize),
      ...zstdAnnotations,
    },
  };
}
