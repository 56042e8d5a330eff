/**
 * The eStargz table of contents (`stargz.index.json`, ../shared/reference/estargz.md §2): the
 * entry shape, serialization in the Go writer's key order with its omit-when-empty rules, and
 * a tolerant parser (Go decodes keys case-insensitively and ignores unknown ones).
 */
import { createHash } from 'node:crypto';

export const TOC_NAME = 'stargz.index.json';
/** TOC_NAME as the bytes a tar header holds, for comparing names without decoding them. */
export const TOC_NAME_BYTES = Buffer.from(TOC_NAME);
export const LANDMARK_PREFETCH = '.prefetch.landmark';
export const LANDMARK_NO_PREFETCH = '.no.prefetch.landmark';
/** A landmark's whole content: one byte 0x0f. */
export const LANDMARK_CONTENT = Buffer.from([0x0f]);
/** Upstream's default chunk size (4 MiB). */
export const DEFAULT_CHUNK_SIZE = 4 << 20;

export type TocEntryType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'chunk';

export interface TocEntry {
  name: string;
  type: TocEntryType;
  size?: number;
  modtime?: string;
  linkName?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  userName?: string;
  groupName?: string;
  offset?: number;
  innerOffset?: number;
  devMajor?: number;
  devMinor?: number;
  /** Attribute name → base64 of the raw value. */
  xattrs?: Record<string, string>;
  digest?: string;
  chunkOffset?: number;
  chunkSize?: number;
  chunkDigest?: string;
}

export interface Toc {
  version: number;
  entries: TocEntry[];
  /** containers/storage zstd:chunked: sha256 of the compressed tar-split frame. */
  tarSplitDigest?: string;
}

/** Go's struct field order in estargz/types.go TOCEntry. */
const KEY_ORDER: readonly (keyof TocEntry)[] = [
  'name', 'type', 'size', 'modtime', 'linkName', 'mode', 'uid', 'gid', 'userName', 'groupName', 'offset',
  'innerOffset', 'devMajor', 'devMinor', 'xattrs', 'digest', 'chunkOffset', 'chunkSize', 'chunkDigest',
];

function isEmpty(value: unknown): boolean {
  return value === undefined || value === 0 || value === '' || (typeof value === 'object' && value !== null && Object.keys(value).length === 0);
}

function ordered(entry: TocEntry): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of KEY_ORDER) {
    const value = entry[key];
    if (isEmpty(value)) continue;
    if (key === 'xattrs') {
      // Go marshals maps with sorted keys.
      const xattrs = value as Record<string, string>;
      out[key] = Object.fromEntries(Object.keys(xattrs).sort().map((k) => [k, xattrs[k]]));
    } else {
      out[key] = value;
    }
  }
  return out;
}

/**
 * `json.MarshalIndent(toc, "", "\t")` equivalent: tab indentation, no trailing newline, and Go's
 * HTML-safe escapes for < > & and U+2028/U+2029.
 */
export function serializeToc(toc: Toc): Buffer {
  const text = JSON.stringify({ version: toc.version, entries: toc.entries.map(ordered) }, null, '\t');
  const goEscaped = text.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return Buffer.from(goEscaped, 'utf8');
}

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export class TocError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TocError';
  }
}

/** Keys as Go's writer spells them (encoding/json matches keys case-insensitively). */
const ENTRY_KEYS = new Set(['name', 'type', 'size', 'modtime', 'linkName', 'mode', 'uid', 'gid', 'userName', 'groupName', 'offset', 'innerOffset', 'devMajor', 'devMinor', 'xattrs', 'digest', 'chunkOffset', 'chunkSize', 'chunkDigest', 'NumLink',
  // containers/storage's zstd:chunked TOC (minimal.FileMetadata) adds these.
  'endOffset', 'chunkType', 'accesstime', 'changetime']);

/**
 * The object with lower-cased keys. Entries that use only the writer's spelling (every entry of
 * every layer we have seen) are read in place instead: a TOC has an entry per file and chunk.
 */
function lowerKeys(value: Record<string, unknown>): { get(key: string): unknown } {
  let canonical = true;
  for (const k in value) {
    if (!ENTRY_KEYS.has(k)) {
      canonical = false;
      break;
    }
  }
  if (canonical) return { get: (key) => value[key] };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k.toLowerCase()] = v;
  return { get: (key) => out[key.toLowerCase()] };
}

type Fields = { get(key: string): unknown };

function optionalInt(obj: Fields, key: string, index: number): number | undefined {
  const v = obj.get(key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new TocError(`TOC entry ${index}: ${key} is not a non-negative integer`);
  return v;
}

function optionalString(obj: Fields, key: string, index: number): string | undefined {
  const v = obj.get(key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new TocError(`TOC entry ${index}: ${key} is not a string`);
  return v;
}

const TYPES = new Set<string>(['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk']);

/** What each writer-spelled key must hold; keys of other producers' fields we do not use are not checked. */
const FIELD_KINDS: ReadonlyMap<string, 'int' | 'string' | 'xattrs' | 'other'> = new Map([
  ...(['size', 'mode', 'uid', 'gid', 'offset', 'innerOffset', 'devMajor', 'devMinor', 'chunkOffset', 'chunkSize'] as const).map((k) => [k, 'int'] as const),
  ...(['name', 'type', 'modtime', 'linkName', 'userName', 'groupName', 'digest', 'chunkDigest'] as const).map((k) => [k, 'string'] as const),
  ['xattrs', 'xattrs'] as const,
  ...(['NumLink', 'endOffset', 'chunkType', 'accesstime', 'changetime'] as const).map((k) => [k, 'other'] as const),
]);

/**
 * The entry as JSON.parse made it, when every key has the writer's spelling and no value is null
 * (every entry of every layer we have seen): checked in place instead of copied field by field,
 * which was most of the TOC's parse time (a TOC has an entry per file and chunk: 63k for /usr).
 * Undefined otherwise; the caller then takes the general path.
 */
function checkedInPlace(raw: Record<string, unknown>, index: number): TocEntry | undefined {
  for (const key in raw) {
    const kind = FIELD_KINDS.get(key);
    const v = raw[key];
    if (kind === undefined || v === null) return undefined;
    if (kind === 'int') {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new TocError(`TOC entry ${index}: ${key} is not a non-negative integer`);
    } else if (kind === 'string') {
      if (typeof v !== 'string') throw new TocError(`TOC entry ${index}: ${key} is not a string`);
    } else if (kind === 'xattrs') {
      return undefined;
    }
  }
  const type = raw.type;
  if (typeof type !== 'string' || !TYPES.has(type)) throw new TocError(`TOC entry ${index}: unknown type ${JSON.stringify(type)}`);
  if (raw.name === undefined) raw.name = '';
  return raw as unknown as TocEntry;
}

/** Parses TOC JSON bytes; legacy (crfs) TOCs with `NumLink` and without chunk digests are accepted. */
export function parseToc(json: Buffer): Toc {
  let doc: unknown;
  try {
    doc = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new TocError(`TOC is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new TocError('TOC is not a JSON object');
  const top = lowerKeys(doc as Record<string, unknown>);
  const version = top.get('version');
  const list = top.get('entries');
  if (version !== 1) throw new TocError(`TOC version ${JSON.stringify(version)} is not supported (want 1)`);
  if (!Array.isArray(list)) throw new TocError('TOC has no entries array');
  const entries = list.map(checkedEntry);
  const tarSplitDigest = top.get('tarSplitDigest');
  if (tarSplitDigest !== undefined && tarSplitDigest !== null && typeof tarSplitDigest !== 'string') throw new TocError('TOC tarSplitDigest is not a string');
  return { version: 1, entries, ...(typeof tarSplitDigest === 'string' && tarSplitDigest !== '' ? { tarSplitDigest } : {}) };
}

/** One entry of the `entries` array as JSON.parse made it, checked (and normalised if needed). */
function checkedEntry(raw: unknown, index: number): TocEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TocError(`TOC entry ${index} is not an object`);
  const fast = checkedInPlace(raw as Record<string, unknown>, index);
  if (fast) {
    assertInsideLayer(fast.name, `TOC entry ${index}`);
    return fast;
  }
  const o = lowerKeys(raw as Record<string, unknown>);
  const type = optionalString(o, 'type', index);
  if (type === undefined || !TYPES.has(type)) throw new TocError(`TOC entry ${index}: unknown type ${JSON.stringify(type)}`);
  const xattrsRaw = o.get('xattrs');
  let xattrs: Record<string, string> | undefined;
  if (xattrsRaw !== undefined && xattrsRaw !== null) {
    if (typeof xattrsRaw !== 'object' || Array.isArray(xattrsRaw)) throw new TocError(`TOC entry ${index}: xattrs is not an object`);
    xattrs = {};
    for (const [k, v] of Object.entries(xattrsRaw as Record<string, unknown>)) {
      if (typeof v !== 'string') throw new TocError(`TOC entry ${index}: xattr ${k} is not base64 text`);
      xattrs[k] = v;
    }
  }
  const name = optionalString(o, 'name', index) ?? '';
  assertInsideLayer(name, `TOC entry ${index}`);
  return {
    name,
    type: type as TocEntryType,
    size: optionalInt(o, 'size', index),
    modtime: optionalString(o, 'modtime', index),
    linkName: optionalString(o, 'linkName', index),
    mode: optionalInt(o, 'mode', index),
    uid: optionalInt(o, 'uid', index),
    gid: optionalInt(o, 'gid', index),
    userName: optionalString(o, 'userName', index),
    groupName: optionalString(o, 'groupName', index),
    offset: optionalInt(o, 'offset', index),
    innerOffset: optionalInt(o, 'innerOffset', index),
    devMajor: optionalInt(o, 'devMajor', index),
    devMinor: optionalInt(o, 'devMinor', index),
    xattrs,
    digest: optionalString(o, 'digest', index),
    chunkOffset: optionalInt(o, 'chunkOffset', index),
    chunkSize: optionalInt(o, 'chunkSize', index),
    chunkDigest: optionalString(o, 'chunkDigest', index),
  };
}

/** How upstream's writer (Go's json.MarshalIndent with a tab) and ours lay a TOC out. */
const INDENTED_HEAD = Buffer.from('{\n\t"version": 1,\n\t"entries": [\n');
const INDENTED_TAIL = Buffer.from('\n\t]\n}');
/** The end of one entry of `entries` and the start of the next: a raw newline never occurs inside a JSON string. */
const ENTRY_BREAK = Buffer.from('\n\t\t},\n\t\t{');

/**
 * parseToc for a thread with other work waiting: a TOC laid out as upstream's writer lays it out
 * is parsed a slice of entries at a time (cut where one entry ends and the next begins), with
 * `pause()` between slices, so no single step holds the thread for the whole parse (a 22 MB TOC
 * is ~100 ms of JSON.parse). The result equals parseToc's; any other layout, and any slice that
 * does not parse, goes to parseToc whole, whose result and errors are the answer.
 */
export async function parseTocInSlices(json: Buffer, pause: () => Promise<void>, sliceBytes = 256 * 1024): Promise<Toc> {
  let end = json.length;
  while (end > 0 && (json[end - 1] === 0x0a || json[end - 1] === 0x20)) end--;
  const head = INDENTED_HEAD.length;
  if (end - INDENTED_TAIL.length <= head || !json.subarray(0, head).equals(INDENTED_HEAD) || !json.subarray(end - INDENTED_TAIL.length, end).equals(INDENTED_TAIL)) {
    return parseToc(json);
  }
  end -= INDENTED_TAIL.length;
  const entries: TocEntry[] = [];
  let at = head;
  while (at < end) {
    const next = at + sliceBytes >= end ? -1 : json.indexOf(ENTRY_BREAK, at + sliceBytes);
    // The slice ends after the closing brace of its last entry; the next starts at the tabs before "{".
    const cut = next === -1 || next >= end ? end : next + 4;
    // Wrapped in brackets, a slice parses to an array or not at all.
    let slice: unknown[];
    try {
      slice = JSON.parse(`[${json.toString('utf8', at, cut)}]`) as unknown[];
    } catch {
      return parseToc(json);
    }
    for (const raw of slice) entries.push(checkedEntry(raw, entries.length));
    at = cut === end ? end : cut + 2;
    if (at < end) await pause();
  }
  return { version: 1, entries };
}

/** A `..` path component (a test, not a split: this runs for every entry of every TOC). */
const DOT_DOT_COMPONENT = /(?:^|\/)\.\.(?:\/|$)/;

/**
 * Refuses a name that is absolute or has a `..` component. Go's reader would clean such a name
 * back inside the root; our tools refuse it instead, because no legitimate layer builder writes
 * one and a tool that extracts by name must never be pointed outside the layer.
 */
export function assertInsideLayer(name: string, where: string): void {
  if (name.startsWith('/') || DOT_DOT_COMPONENT.test(name)) {
    throw new TocError(`${where}: name ${JSON.stringify(name)} leaves the layer root (absolute or with a ".." component)`);
  }
}

/** Go's reader: `path.Clean("/" + name)` without the leading slash. */
export function cleanName(name: string): string {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return parts.join('/');
}
