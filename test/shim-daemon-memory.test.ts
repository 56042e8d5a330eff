/**
 * The idle shim's memory trim: which of the executable's mappings may be dropped (only
 * read-only, file-backed mappings of the executable holding exactly the file's bytes), and that
 * trimming a live process (drop the executable's pages, memory-reducing GC, malloc_trim) leaves
 * it working: code faults back in, the heap keeps its objects.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { droppable, dropExecutablePages, parseSmaps } from '../src/sys/drop-file-pages.ts';
import { mallocTrim } from '../src/sys/malloc-trim.ts';
import { IdleTrimmer, trimNow } from '../shims/outrigger-v2/daemon-memory.ts';

const SMAPS = `55d0c8a00000-55d0c8e2e000 r--p 00000000 fe:01 1234 /usr/bin/outrigger
Size:               4280 kB
Rss:                3128 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0c8e2e000-55d0cb653000 r-xp 0042e000 fe:01 1234 /usr/bin/outrigger
Size:              45420 kB
Rss:               20504 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0cf000000-55d0cf100000 r--p 07000000 fe:01 1234 /usr/bin/outrigger
Size:               1024 kB
Rss:                1024 kB
Private_Dirty:       512 kB
Anonymous:           512 kB
55d0cf100000-55d0cf200000 rw-p 07100000 fe:01 1234 /usr/bin/outrigger
Size:               1024 kB
Rss:                  12 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000000000-7f0000100000 r-xp 00026000 fe:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Size:               1024 kB
Rss:                 900 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Size:               1024 kB
Rss:                1024 kB
Private_Dirty:      1024 kB
Anonymous:          1024 kB
`;

describe('which mappings may be dropped', () => {
  it('parses ranges, permissions, paths and counters', () => {
    const maps = parseSmaps(SMAPS);
    expect(maps).toHaveLength(6);
    expect(maps[1]).toEqual({ start: 0x55d0c8e2e000n, end: 0x55d0cb653000n, perms: 'r-xp', path: '/usr/bin/outrigger', rssKiB: 20504, anonKiB: 0, privateDirtyKiB: 0 });
    expect(maps[5]!.path).toBe('');
  });

  it('only clean read-only mappings of the executable itself', () => {
    const verdicts = parseSmaps(SMAPS).map((m) => droppable(m, '/usr/bin/outrigger'));
    // read-only code and data: yes; relocated (written) read-only data: no; writable: no; other files and anonymous: no
    expect(verdicts).toEqual([true, true, false, false, false, false]);
  });
});

describe('trimming a live process', () => {
  it('drops the executable pages, collects and trims malloc, and the process keeps working', () => {
    const kept = Array.from({ length: 1000 }, (_, i) => ({ i, s: `v${i}` }));
    const mappings = dropExecutablePages();
    expect(mappings).toBeGreaterThan(0);
    expect(typeof mallocTrim()).toBe('boolean');
    trimNow();
    expect(kept[999]).toEqual({ i: 999, s: 'v999' });
    expect(JSON.parse(JSON.stringify({ ok: [1, 2, 3] }))).toEqual({ ok: [1, 2, 3] });
    expect(fs.readFileSync('/proc/self/status', 'utf8')).toMatch(/^VmRSS:/m);
  });

  it('the idle trimmer fires once after quiet time, again after new activity, and not after close', async () => {
    const trimmer = new IdleTrimmer(30);
    const wait = async (n: number) => {
      for (let i = 0; i < 300 && trimmer.trims < n; i++) await new Promise((r) => setTimeout(r, 10));
    };
    await wait(1);
    expect(trimmer.trims).toBe(1);
    trimmer.activity();
    await wait(2);
    expect(trimmer.trims).toBe(2);
    trimmer.close();
    trimmer.activity();
    await new Promise((r) => setTimeout(r, 100));
    expect(trimmer.trims).toBe(2);
  });
});
