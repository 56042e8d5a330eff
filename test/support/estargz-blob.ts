/**
 * Hand-assembled eStargz blobs for the fuzz and security tests: our own minimal ustar writer
 * and gzip members, so a test can put names, TOC JSON or footers into a blob that no builder
 * (ours included) would write. Layout as in ../../shared/reference/estargz.md: one gzip member
 * per entry (tar header + payload), then a member with the tar entry stargz.index.json and the
 * end-of-archive blocks, then the 51-byte footer pointing at that member. tarOfFiles writes a
 * small tar for our builder (processors/estargz/build-buffer.ts) to turn into a well-formed blob.
 */
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import tarStream from 'tar-stream';

const BLOCK = 512;
const ESTARGZ_FOOTER_HEAD = Buffer.from('1f8b08040000000000ff1a0053471600', 'hex');
const EMPTY_DEFLATE_AND_TRAILER = Buffer.from('010000ffff0000000000000000', 'hex');
export const FOOTER_SIZE = 51;

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** One ustar header block; `name` up to 100 bytes (the tests use short names). */
export function ustarHeader(name: string, size: number, type: '0' | '5' | '2' = '0', linkName = ''): Buffer {
  const h = Buffer.alloc(BLOCK);
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length > 100) throw new Error(`ustarHeader: name ${name} is longer than 100 bytes`);
  nameBytes.copy(h, 0);
  h.write(octal(type === '5' ? 0o755 : 0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(0, 12), 136, 'latin1');
  h.fill(' ', 148, 156);
  h.write(type, 156, 'latin1');
  Buffer.from(linkName, 'utf8').copy(h, 157);
  h.write('ustar\0' + '00', 257, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

function padded(data: Buffer): Buffer {
  const rest = data.length % BLOCK;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(BLOCK - rest)]);
}

export function sha256(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function encodeFooter(tocOffset: number): Buffer {
  return Buffer.concat([ESTARGZ_FOOTER_HEAD, Buffer.from(`${tocOffset.toString(16).padStart(16, '0')}STARGZ`, 'latin1'), EMPTY_DEFLATE_AND_TRAILER]);
}

/** The TOC member: a gzip member holding the tar entry stargz.index.json and two zero blocks. */
export function tocMember(json: Buffer): Buffer {
  return zlib.gzipSync(Buffer.concat([ustarHeader('stargz.index.json', json.length), padded(json), Buffer.alloc(2 * BLOCK)]));
}

export interface BlobFile {
  readonly name: string;
  readonly content?: Buffer;
  readonly type?: 'reg' | 'dir' | 'symlink';
  readonly linkName?: string;
}

export interface AssembledBlob {
  readonly blob: Buffer;
  readonly tocJson: Buffer;
  readonly tocDigest: string;
  /** What `gzip -dc blob` gives: the layer's tar. */
  readonly tar: Buffer;
}

/**
 * An eStargz blob whose TOC matches its tar exactly, whatever the names are. As eStargz
 * requires, every file payload starts a gzip member (its tar header ends the previous one).
 */
export function assembleEstargz(files: readonly BlobFile[]): AssembledBlob {
  const members: Buffer[] = [];
  const tarParts: Buffer[] = [];
  const entries: Record<string, unknown>[] = [];
  let compressed = 0;
  let pending: Buffer[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const member = zlib.gzipSync(Buffer.concat(pending));
    members.push(member);
    compressed += member.length;
    pending = [];
  };
  for (const f of files) {
    const type = f.type ?? 'reg';
    const content = type === 'reg' ? (f.content ?? Buffer.alloc(0)) : Buffer.alloc(0);
    const header = ustarHeader(f.name, content.length, type === 'reg' ? '0' : type === 'dir' ? '5' : '2', f.linkName ?? '');
    pending.push(header);
    tarParts.push(header);
    const entry: Record<string, unknown> = { name: f.name, type, mode: type === 'dir' ? 0o755 : 0o644 };
    if (type === 'symlink') entry.linkName = f.linkName ?? '';
    if (type === 'reg') {
      entry.size = content.length;
      if (content.length > 0) {
        flush();
        entry.offset = compressed;
        entry.digest = sha256(content);
        entry.chunkDigest = sha256(content);
        pending.push(padded(content));
        tarParts.push(padded(content));
      }
    }
    entries.push(entry);
  }
  flush();
  const tocJson = Buffer.from(JSON.stringify({ version: 1, entries }, null, '\t'));
  const blob = Buffer.concat([...members, tocMember(tocJson), encodeFooter(compressed)]);
  const tar = Buffer.concat([...tarParts, ustarHeader('stargz.index.json', tocJson.length), padded(tocJson), Buffer.alloc(2 * BLOCK)]);
  return { blob, tocJson, tocDigest: sha256(tocJson), tar };
}

/** The TOC offset a blob's eStargz footer names. */
export function footerTocOffset(blob: Buffer): number {
  return Number.parseInt(blob.toString('latin1', blob.length - FOOTER_SIZE + 16, blob.length - FOOTER_SIZE + 32), 16);
}

/** `blob` with its TOC member replaced by one carrying `json` (the footer still points at it). */
export function withToc(blob: Buffer, json: Buffer): Buffer {
  const at = footerTocOffset(blob);
  return Buffer.concat([blob.subarray(0, at), tocMember(json), encodeFooter(at)]);
}

/** The TOC JSON stored in a blob (first tar entry of the TOC member). */
export function tocJsonOf(blob: Buffer): Buffer {
  const at = footerTocOffset(blob);
  const tar = zlib.gunzipSync(blob.subarray(at, blob.length - FOOTER_SIZE));
  const size = Number.parseInt(tar.toString('latin1', 124, 136).replace(/\0.*$/, '').trim(), 8);
  return tar.subarray(BLOCK, BLOCK + size);
}

/** A tar written by tar-stream: directory `d/`, then `files` (regular, 0644), then `trailer` entries. */
export async function tarOfFiles(files: ReadonlyArray<readonly [string, Buffer]>, trailer: ReadonlyArray<{ header: Parameters<ReturnType<typeof tarStream.pack>["entry"]>[0]; content?: Buffer }>): Promise<Buffer> {
  const mtime = new Date(1_700_000_000_000);
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  pack.entry({ name: 'd/', type: 'directory', mode: 0o755, mtime });
  for (const [name, data] of files) pack.entry({ name, mode: 0o644, mtime }, data);
  for (const { header, content } of trailer) {
    if (content === undefined) pack.entry(header);
    else pack.entry(header, content);
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** File content that compresses a little and never repeats a long pattern, the same for a seed. */
export function seededContent(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = (x >>> 24) & 0x7f;
  }
  return b;
}
