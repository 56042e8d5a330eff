/**
 * io.containerd.cgroups.v2.Metrics from a cgroup v2 directory, as containerd's cgroups
 * library fills it (task-api.md §6.2). File formats: the kernel's
 * Documentation/admin-guide/cgroup-v2.rst (pids.current/max, cpu.stat, memory.current/max/
 * stat/events/swap.*, memory.peak, io.stat, hugetlb.<size>.current/max). `max` reads as
 * 2^64-1, which is what containerd reports for "no limit" in v2. Absent controllers leave
 * their fields unset.
 */
import { create } from '@bufbuild/protobuf';
import type { IOEntry, Metrics } from '../../../src/api/gen/io/containerd/cgroups/v2/metrics_pb.ts';
import { IOEntrySchema, MetricsSchema } from '../../../src/api/gen/io/containerd/cgroups/v2/metrics_pb.ts';
import { CgroupParseError, parseFlatKeyed, parseSingleValue } from './flat-keyed.ts';

/** Reads a file of the cgroup directory; undefined when it is absent. */
export type V2Reader = (file: string) => string | undefined;
export type V2Lister = () => readonly string[];

export const UNLIMITED = 0xffff_ffff_ffff_ffffn;

export function v2Metrics(read: V2Reader, list: V2Lister = () => []): Metrics {
  const m = create(MetricsSchema);
  const value = (file: string): bigint | undefined => {
    const text = read(file);
    return text === undefined ? undefined : parseSingleValue(text, UNLIMITED, file);
  };
  const keyed = (file: string): Map<string, bigint> | undefined => {
    const text = read(file);
    return text === undefined ? undefined : parseFlatKeyed(text, file);
  };

  const pids = value('pids.current');
  if (pids !== undefined) m.pids = { $typeName: 'io.containerd.cgroups.v2.PidsStat', current: pids, limit: value('pids.max') ?? 0n };

  // cpu.stat exists in every cgroup (usage_usec, user_usec, system_usec even without the cpu controller).
  const cpu = keyed('cpu.stat');
  if (cpu !== undefined) {
    const c = (k: string) => cpu.get(k) ?? 0n;
    m.cpu = {
      $typeName: 'io.containerd.cgroups.v2.CPUStat',
      usageUsec: c('usage_usec'),
      userUsec: c('user_usec'),
      systemUsec: c('system_usec'),
      nrPeriods: c('nr_periods'),
      nrThrottled: c('nr_throttled'),
      throttledUsec: c('throttled_usec'),
    };
  }

  const stat = keyed('memory.stat');
  if (stat !== undefined) {
    const s = (k: string) => stat.get(k) ?? 0n;
    // Kernels ≥ 5.9 split workingset_* into _anon and _file; the older single key is their sum.
    const ws = (k: string) => stat.get(k) ?? s(`${k}_anon`) + s(`${k}_file`);
    m.memory = {
      $typeName: 'io.containerd.cgroups.v2.MemoryStat',
      anon: s('anon'),
      file: s('file'),
      kernelStack: s('kernel_stack'),
      slab: s('slab'),
      sock: s('sock'),
      shmem: s('shmem'),
      fileMapped: s('file_mapped'),
      fileDirty: s('file_dirty'),
      fileWriteback: s('file_writeback'),
      anonThp: s('anon_thp'),
      inactiveAnon: s('inactive_anon'),
      activeAnon: s('active_anon'),
      inactiveFile: s('inactive_file'),
      activeFile: s('active_file'),
      unevictable: s('unevictable'),
      slabReclaimable: s('slab_reclaimable'),
      slabUnreclaimable: s('slab_unreclaimable'),
      pgfault: s('pgfault'),
      pgmajfault: s('pgmajfault'),
      workingsetRefault: ws('workingset_refault'),
      workingsetActivate: ws('workingset_activate'),
      workingsetNodereclaim: s('workingset_nodereclaim'),
      pgrefill: s('pgrefill'),
      pgscan: s('pgscan'),
      pgsteal: s('pgsteal'),
      pgactivate: s('pgactivate'),
      pgdeactivate: s('pgdeactivate'),
      pglazyfree: s('pglazyfree'),
      pglazyfreed: s('pglazyfreed'),
      thpFaultAlloc: s('thp_fault_alloc'),
      thpCollapseAlloc: s('thp_collapse_alloc'),
      usage: value('memory.current') ?? 0n,
      usageLimit: value('memory.max') ?? 0n,
      swapUsage: value('memory.swap.current') ?? 0n,
      swapLimit: value('memory.swap.max') ?? 0n,
      maxUsage: value('memory.peak') ?? 0n,
      swapMaxUsage: value('memory.swap.peak') ?? 0n,
    };
  }

  const events = keyed('memory.events');
  if (events !== undefined) {
    const e = (k: string) => events.get(k) ?? 0n;
    m.memoryEvents = { $typeName: 'io.containerd.cgroups.v2.MemoryEvents', low: e('low'), high: e('high'), max: e('max'), oom: e('oom'), oomKill: e('oom_kill') };
  }

  const io = read('io.stat');
  if (io !== undefined) m.io = { $typeName: 'io.containerd.cgroups.v2.IOStat', usage: parseIoStat(io) };

  for (const file of list()) {
    const size = /^hugetlb\.([^.]+)\.current$/.exec(file)?.[1];
    if (size === undefined) continue;
    m.hugetlb.push({ $typeName: 'io.containerd.cgroups.v2.HugeTlbStat', pagesize: size, current: value(file) ?? 0n, max: value(`hugetlb.${size}.max`) ?? 0n });
  }
  return m;
}

/** io.stat: `MAJ:MIN key=value …` per device ("nested keyed"); unknown keys (dbytes, dios) are skipped. */
export function parseIoStat(text: string): IOEntry[] {
  const out: IOEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const words = lines[i]!.trim().split(/\s+/).filter((w) => w !== '');
    if (words.length === 0) continue;
    const dev = /^(\d+):(\d+)$/.exec(words[0]!);
    if (!dev) throw new CgroupParseError(`io.stat:${i + 1}: expected "MAJ:MIN key=value…", got ${JSON.stringify(lines[i]!.slice(0, 60))}`);
    const entry = create(IOEntrySchema, { major: BigInt(dev[1]!), minor: BigInt(dev[2]!) });
    for (const kv of words.slice(1)) {
      const m = /^([a-z_]+)=(\d+)$/.exec(kv);
      if (!m) throw new CgroupParseError(`io.stat:${i + 1}: expected key=value, got ${JSON.stringify(kv.slice(0, 40))}`);
      const v = BigInt(m[2]!);
      if (m[1] === 'rbytes') entry.rbytes = v;
      else if (m[1] === 'wbytes') entry.wbytes = v;
      else if (m[1] === 'rios') entry.rios = v;
      else if (m[1] === 'wios') entry.wios = v;
    }
    out.push(entry);
  }
  return out;
}
