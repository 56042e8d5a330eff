/**
 * Drops the resident pages of this process's own executable from its page tables
 * (madvise MADV_DONTNEED on the read-only, never-written file mappings of /proc/self/exe). The
 * pages stay in the page cache; a later touch maps them again with a minor fault. Node's start-up
 * touches 30–40 MB of its 117 MB executable (code, read-only data, the SEA blob), counted in the
 * RSS of every process and, split among them, in their Pss; an idle shim touches almost none of it
 * again. Only mappings without write permission, without anonymous (copied-on-write) pages and
 * without private dirty pages are touched, so no byte that differs from the file is discarded.
 * A binding of its own (not src/sys/libc.ts) so a libc without a call only loses this feature.
 */
import fs from 'node:fs';

const MADV_DONTNEED = 4;

let madvise: ((addr: bigint, len: bigint, advice: number) => number) | null | undefined;

function bind(): typeof madvise {
  if (madvise !== undefined) return madvise;
  try {
    const ffi = process.getBuiltinModule('node:ffi');
    const { functions } = ffi.dlopen(null, { madvise: { return: 'i32', arguments: ['u64', 'u64', 'i32'] } } as const);
    madvise = (addr, len, advice) => functions.madvise(addr, len, advice);
  } catch {
    madvise = null;
  }
  return madvise;
}

export interface FileMapping {
  readonly start: bigint;
  readonly end: bigint;
  readonly perms: string;
  readonly path: string;
  readonly rssKiB: number;
  readonly anonKiB: number;
  readonly privateDirtyKiB: number;
}

/** The mappings of /proc/<pid>/smaps text, with the counters this module needs. */
export function parseSmaps(text: string): FileMapping[] {
  const out: FileMapping[] = [];
  let cur: { start: bigint; end: bigint; perms: string; path: string; rssKiB: number; anonKiB: number; privateDirtyKiB: number } | undefined;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      cur = { start: BigInt(`0x${head[1]}`), end: BigInt(`0x${head[2]}`), perms: head[3]!, path: head[4]!, rssKiB: 0, anonKiB: 0, privateDirtyKiB: 0 };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const field = /^(Rss|Anonymous|Private_Dirty):\s+(\d+) kB/.exec(line);
    if (!field) continue;
    const kib = Number(field[2]);
    if (field[1] === 'Rss') cur.rssKiB = kib;
    else if (field[1] === 'Anonymous') cur.anonKiB = kib;
    else cur.privateDirtyKiB = kib;
  }
  return out;
}

/** Whether dropping `m`'s pages loses nothing: read-only, file-backed, and exactly the file's bytes. */
export function droppable(m: FileMapping, file: string): boolean {
  return m.path === file && !m.perms.includes('w') && m.anonKiB === 0 && m.privateDirtyKiB === 0 && m.rssKiB > 0;
}

/** Ranges of the executable found droppable; they do not change while the process runs. */
let ranges: { start: bigint; length: bigint }[] | undefined;

/**
 * Drops the executable's droppable mappings. The first call finds them in /proc/self/smaps;
 * later calls reuse that list, so they make no garbage (a read-only mapping without written pages
 * stays so: nothing here or in Node makes the executable's mappings writable). Returns the number
 * of mappings advised (0 when madvise is unavailable).
 */
export function dropExecutablePages(): number {
  const fn = bind();
  if (!fn) return 0;
  if (ranges === undefined) {
    const exe = fs.readlinkSync('/proc/self/exe');
    ranges = parseSmaps(fs.readFileSync('/proc/self/smaps', 'utf8'))
      .filter((m) => droppable(m, exe))
      .map((m) => ({ start: m.start, length: m.end - m.start }));
  }
  let advised = 0;
  for (const r of ranges) if (fn(r.start, r.length, MADV_DONTNEED) === 0) advised++;
  return advised;
}
