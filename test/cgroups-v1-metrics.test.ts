/**
 * cgroup v1 → io.containerd.cgroups.v1.Metrics (shims/outrigger-v2/cgroups/v1-metrics.ts) from
 * fixture controller directories in the kernel's documented formats, field by field against
 * task-api.md §6.1 (the e2e test compares live numbers with the runc shim's); blkio lines as
 * a property.
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseBlkioEntries, v1Metrics } from '../shims/outrigger-v2/cgroups/v1-metrics.ts';

const dir = path.join(import.meta.dirname, 'fixtures/cgroups/v1');
const read = (controller: string, file: string) => {
  const p = path.join(dir, controller, file);
  return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : undefined;
};
const list = (controller: string) => (fs.existsSync(path.join(dir, controller)) ? fs.readdirSync(path.join(dir, controller)) : []);

describe('v1 metrics from controller directories', () => {
  const m = v1Metrics(read, list, (major, minor) => (major === 8n && minor === 0n ? '/dev/sda' : ''));

  it('pids, and cpu: cpuacct ticks in ns (USER_HZ 100), per-cpu usage, throttling', () => {
    expect(m.pids).toMatchObject({ current: 2n, limit: 64n });
    expect(m.cpu?.usage).toMatchObject({ total: 5000000000n, user: 3000000000n, kernel: 1500000000n, perCpu: [3000000000n, 2000000000n] });
    expect(m.cpu?.throttling).toMatchObject({ periods: 10n, throttledPeriods: 4n, throttledTime: 123456n });
  });

  it('memory.stat keys 1–32 in proto order, usage and swap entries, oom_control', () => {
    const mem = m.memory!;
    const flat = [
      mem.cache, mem.rss, mem.rssHuge, mem.mappedFile, mem.dirty, mem.writeback, mem.pgPgIn, mem.pgPgOut, mem.pgFault, mem.pgMajFault,
      mem.inactiveAnon, mem.activeAnon, mem.inactiveFile, mem.activeFile, mem.unevictable, mem.hierarchicalMemoryLimit, mem.hierarchicalSwapLimit,
      mem.totalCache, mem.totalRss, mem.totalRssHuge, mem.totalMappedFile, mem.totalDirty, mem.totalWriteback, mem.totalPgPgIn, mem.totalPgPgOut,
      mem.totalPgFault, mem.totalPgMajFault, mem.totalInactiveAnon, mem.totalActiveAnon, mem.totalInactiveFile, mem.totalActiveFile, mem.totalUnevictable,
    ];
    expect(flat).toEqual(Array.from({ length: 32 }, (_, i) => BigInt(i + 1)));
    expect(mem.usage).toMatchObject({ usage: 1000n, limit: 8388608n, max: 2000n, failcnt: 3n });
    expect(mem.swap).toMatchObject({ usage: 1100n, limit: 9223372036854771712n, max: 2100n, failcnt: 0n });
    // kmem files absent (newer kernels): left unset, as containerd leaves them
    expect(mem.kernel).toBeUndefined();
    expect(m.memoryOomControl).toMatchObject({ oomKillDisable: 0n, underOom: 0n, oomKill: 1n });
  });

  it('blkio falls back to the throttle files when io_serviced_recursive is empty, and drops the device-less Total', () => {
    const b = m.blkio!;
    expect(b.ioServiceBytesRecursive.map((e) => [e.device, e.major, e.minor, e.op, e.value])).toEqual([
      ['/dev/sda', 8n, 0n, 'Read', 4096n],
      ['/dev/sda', 8n, 0n, 'Write', 8192n],
      ['/dev/sda', 8n, 0n, 'Sync', 12288n],
      ['/dev/sda', 8n, 0n, 'Async', 0n],
      ['/dev/sda', 8n, 0n, 'Discard', 0n],
      ['/dev/sda', 8n, 0n, 'Total', 12288n],
    ]);
    expect(b.ioServicedRecursive.map((e) => e.value)).toEqual([1n, 2n, 3n, 0n, 0n, 3n]);
  });

  it('hugetlb per page size', () => {
    expect(m.hugetlb.map((h) => [h.pagesize, h.usage, h.max, h.failcnt])).toEqual([['2MB', 2097152n, 4194304n, 1n]]);
  });

  it('missing controllers leave their fields unset; a pids.max of "max" is 0', () => {
    const only = v1Metrics((c, f) => (c === 'pids' ? (f === 'pids.current' ? '1\n' : 'max\n') : undefined));
    expect(only.pids).toMatchObject({ current: 1n, limit: 0n });
    expect(only.memory).toBeUndefined();
    expect(only.cpu).toBeUndefined();
    expect(only.blkio).toBeUndefined();
  });

  it('blkio lines with and without an op read back; junk is refused with file and line', () => {
    const op = fc.constantFrom('Read', 'Write', 'Sync', 'Async', 'Discard', 'Total');
    const line = fc.record({ major: fc.bigInt({ min: 0n, max: 4095n }), minor: fc.bigInt({ min: 0n, max: 255n }), op: fc.option(op, { nil: undefined }), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) });
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), (lines) => {
        const text = lines.map((l) => `${l.major}:${l.minor}${l.op ? ` ${l.op}` : ''} ${l.value}`).join('\n') + '\nTotal 0\n';
        expect(parseBlkioEntries(text, 'f').map((e) => ({ major: e.major, minor: e.minor, op: e.op || undefined, value: e.value }))).toEqual(lines);
      }),
    );
    expect(() => parseBlkioEntries('8:0 Read\n', 'blkio/x')).toThrow('blkio/x:1');
  });
});
