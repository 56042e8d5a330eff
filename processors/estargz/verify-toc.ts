/**
 * Checks an eStargz TOC against what actually streamed past (tar-walker.ts), entry by entry.
 *
 * Chunks are keyed by their entry (the i-th TOC file entry is the i-th tar entry; its chunk
 * entries follow it), never by offset alone: innerOffset layers put several chunks at one member
 * offset (../shared/reference/estargz.md §3.3, trip-up 8).
 *
 * Checked: entry count, order, type, name (when the tar name is valid UTF-8; Go's JSON turns
 * invalid UTF-8 into U+FFFD), link target, file size, the whole-file `digest`, every chunk's
 * coverage (contiguous, ending at the file size), its `offset`/`innerOffset` position, and its
 * `chunkDigest`. A chunk whose bytes lie in one member together with other chunks (innerOffset
 * packing) cannot be hashed on its own in a single pass; its position is checked and its bytes
 * are covered by the file's whole `digest`, which is then required.
 */
import type { TocEntry, Toc } from './toc.ts';
import type { Segment, WalkedEntry } from './tar-walker.ts';

export class VerifyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VerifyError';
  }
}

const EMPTY_SHA256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function utf8OrUndefined(b: Buffer): string | undefined {
  try {
    return strictUtf8.decode(b);
  } catch {
    return undefined;
  }
}

export interface VerifySummary {
  entries: number;
  files: number;
  chunks: number;
  /** Chunks whose digest was compared directly. */
  chunkDigestsChecked: number;
  /** Chunks covered only by their file's whole digest (innerOffset packing or legacy TOC). */
  chunksCoveredByFileDigest: number;
}

function describe(entry: TocEntry, index: number): string {
  return `TOC entry ${index} ${JSON.stringify(entry.name)}`;
}

interface Piece {
  entry: TocEntry;
  index: number;
  start: number;
  end: number;
}

export function verifyToc(toc: Toc, walked: readonly WalkedEntry[], memberStarts: ReadonlyMap<number, number>): VerifySummary {
  const summary: VerifySummary = { entries: 0, files: 0, chunks: 0, chunkDigestsChecked: 0, chunksCoveredByFileDigest: 0 };
  let w = 0;
  let i = 0;
  const entries = toc.entries;
  while (i < entries.length) {
    const entry = entries[i]!;
    const at = i;
    if (entry.type === 'chunk') throw new VerifyError(`${describe(entry, i)}: a chunk entry without a regular file before it`);
    const tar = walked[w];
    if (!tar) throw new VerifyError(`${describe(entry, i)}: the tar stream has no entry for it (only ${walked.length} entries before the TOC)`);
    // Built only for a message: this loop runs for every entry of every layer.
    const index = i;
    const where = (): string => `${describe(entry, index)} (tar offset ${tar.headerOffset})`;
    const tarName = utf8OrUndefined(tar.name);
    if (tarName !== undefined && tarName !== entry.name) {
      throw new VerifyError(`${where()}: the tar entry there is named ${JSON.stringify(tarName)}`);
    }
    if (tar.type !== entry.type) throw new VerifyError(`${where()}: type ${entry.type} in the TOC, ${tar.type} in the tar`);
    if (entry.type === 'symlink' || entry.type === 'hardlink') {
      const link = utf8OrUndefined(tar.linkName);
      if (link !== undefined && link !== (entry.linkName ?? '')) {
        throw new VerifyError(`${where()}: link target ${JSON.stringify(entry.linkName ?? '')} in the TOC, ${JSON.stringify(link)} in the tar`);
      }
    }
    i++;
    w++;
    summary.entries++;
    if (entry.type !== 'reg') continue;
    summary.files++;
    const size = entry.size ?? 0;
    if (size !== tar.size) throw new VerifyError(`${where()}: size ${size} in the TOC, ${tar.size} in the tar`);
    if (size === 0) {
      if (entry.digest !== undefined && entry.digest !== EMPTY_SHA256) throw new VerifyError(`${where()}: empty file with digest ${entry.digest}`);
      continue;
    }
    if (tar.digest === undefined) throw new VerifyError(`${where()}: internal: the file's content was not hashed`);
    if (entry.digest !== undefined && entry.digest !== tar.digest) {
      throw new VerifyError(`${where()}: file digest mismatch: TOC says ${entry.digest}, content is ${tar.digest}`);
    }
    // The file's pieces: the reg entry itself, then its chunk entries.
    const group: Array<{ entry: TocEntry; index: number }> = [{ entry, index: at }];
    while (i < entries.length && entries[i]!.type === 'chunk') {
      group.push({ entry: entries[i]!, index: i });
      i++;
    }
    const pieces: Piece[] = group.map((g, k) => {
      const start = g.entry.chunkOffset ?? 0;
      const next = group[k + 1];
      const end = g.entry.chunkSize ? start + g.entry.chunkSize : next ? (next.entry.chunkOffset ?? 0) : size;
      return { entry: g.entry, index: g.index, start, end };
    });
    let expect = 0;
    for (const p of pieces) {
      if (p.start !== expect || p.end <= p.start) {
        throw new VerifyError(`${describe(p.entry, p.index)}: chunk covers file bytes ${p.start}-${p.end - 1}, expected one starting at ${expect}`);
      }
      expect = p.end;
    }
    if (expect !== size) {
      // A single piece whose chunkSize differs from the size is still a whole file when nothing
      // follows (Go: a reg entry counts as chunked only if 0 < chunkSize < size).
      const only = pieces.length === 1 && pieces[0]!.entry.chunkSize !== undefined && pieces[0]!.entry.chunkSize >= size;
      if (!only) throw new VerifyError(`${where()}: chunks end at ${expect}, the file has ${size} bytes`);
      pieces[0]!.end = size;
    }
    for (const p of pieces) {
      summary.chunks++;
      checkPiece(p, tar, memberStarts, summary, entry.digest !== undefined);
    }
  }
  if (w !== walked.length) {
    const extra = walked[w]!;
    throw new VerifyError(`the tar entry ${JSON.stringify(extra.name.toString('utf8'))} at tar offset ${extra.headerOffset} is not in the TOC`);
  }
  return summary;
}

function checkPiece(p: Piece, tar: WalkedEntry, memberStarts: ReadonlyMap<number, number>, summary: VerifySummary, hasFileDigest: boolean): void {
  const label = (): string => `${describe(p.entry, p.index)} chunk at file offset ${p.start} (TOC offset ${p.entry.offset ?? 'none'})`;
  if (p.entry.offset === undefined) throw new VerifyError(`${label()}: no offset`);
  const memberStart = memberStarts.get(p.entry.offset);
  if (memberStart === undefined) throw new VerifyError(`${label()}: no gzip member starts at compressed offset ${p.entry.offset}`);
  if (memberStart + (p.entry.innerOffset ?? 0) !== tar.payloadOffset + p.start) {
    throw new VerifyError(`${label()}: offset/innerOffset point at uncompressed byte ${memberStart + (p.entry.innerOffset ?? 0)}, the chunk is at ${tar.payloadOffset + p.start}`);
  }
  const segment: Segment | undefined = tar.segments.find((s) => s.fileOffset === p.start && s.length === p.end - p.start);
  if (p.entry.chunkDigest === undefined || segment === undefined) {
    if (!hasFileDigest) throw new VerifyError(`${label()}: neither a checkable chunkDigest nor a file digest`);
    summary.chunksCoveredByFileDigest++;
    return;
  }
  if (segment.digest !== p.entry.chunkDigest) {
    throw new VerifyError(`${label()}: chunk digest mismatch: TOC says ${p.entry.chunkDigest}, content is ${segment.digest}`);
  }
  summary.chunkDigestsChecked++;
}
