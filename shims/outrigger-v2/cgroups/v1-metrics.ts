/**
 * io.containerd.cgroups.v1.Metrics from cgroup v1 controller files, field for field as
 * containerd's cgroups library fills them (task-api.md §6.1), so `ctr t metrics` and CRI
 * read the same numbers as under the runc shim. File formats: the kernel's
 * Documentation/admin-guide/cgroup-v1/{memory,cpuacct,blkio-controller,pids,hugetlb}.rst.
 * Files a kernel does not have (kmem on newer kernels, hugetlb not mounted) leave their
 * fields unset, as containerd does; a file that exists but does not parse is an error.
 */
import { create } from '@bufbuild/protobuf';
import type { BlkIOEntry, MemoryEntry, Metrics } from '../../../src/api/gen/io/containerd/cgroups/v1/metrics_pb.ts';
import { BlkIOEntrySchema, MetricsSchema } from '../../../src/api/gen/io/containerd/cgroups/v1/metrics_pb.ts';
import { CgroupParseError, parseFlatKeyed, parseSingleValue, parseValueList } from './flat-keyed.ts';

/** Reads `file` of `controller`'s directory; undefined when the controller or file is absent. */
export type V1Reader = (controller: string, file: string) => string | undefined;
/** Lists the files of a controller's directory (for hugetlb page sizes). */
export type V1Lister = (controller: string) => readonly string[];
/** "8:0" → "/dev/sda", when known (containerd fills BlkIOEntry.device this way). */
export type DeviceNamer = (major: bigint, minor: bigint) => string;

/** cpuacct.stat counts USER_HZ ticks; Linux fixes USER_HZ at 100 for user space. */
const NS_PER_TICK = 10_000_000n;

export function v1Metrics(read: V1Reader, list: V1Lister = () => [], deviceName: DeviceNamer = () => ''): Metrics {
  const m = create(MetricsSchema);
  const value = (controller: string, file: string, maxAs = 0n): bigint | undefined => {
    const text = read(controller, file);
    return text === undefined ? undefined : parseSingleValue(text, maxAs, `${controller}/${file}`);
  };
  const keyed = (controller: string, file: string): Map<string, bigint> | undefined => {
    const text = read(controller, file);
    return text === undefined ? undefined : parseFlatKeyed(text, `${controller}/${file}`);
  };

  // pids: "max" means no limit, which containerd reports as 0.
  const pidsCurrent = value('pids', 'pids.current');
  if (pidsCurrent !== undefined) m.pids = { $typeName: 'io.containerd.cgroups.v1.PidsStat', current: pidsCurrent, limit: value('pids', 'pids.max', 0n) ?? 0n };

  // cpu: cpuacct for usage, cpu.stat for throttling.
  const total = value('cpuacct', 'cpuacct.usage');
  const ticks = keyed('cpuacct', 'cpuacct.stat');
  const percpu = read('cpuacct', 'cpuacct.usage_percpu');
  const throttle = keyed('cpu', 'cpu.stat');
  if (total !== undefined || throttle !== undefined) {
    m.cpu = {
      $typeName: 'io.containerd.cgroups.v1.CPUStat',
      usage: {
        $typeName: 'io.containerd.cgroups.v1.CPUUsage',
        total: total ?? 0n,
        kernel: (ticks?.get('system') ?? 0n) * NS_PER_TICK,
        user: (ticks?.get('user') ?? 0n) * NS_PER_TICK,
        perCpu: percpu === undefined ? [] : parseValueList(percpu, 'cpuacct/cpuacct.usage_percpu'),
      },
      throttling: {
        $typeName: 'io.containerd.cgroups.v1.Throttle',
        periods: throttle?.get('nr_periods') ?? 0n,
        throttledPeriods: throttle?.get('nr_throttled') ?? 0n,
        throttledTime: throttle?.get('throttled_time') ?? 0n,
      },
    };
  }

  const stat = keyed('memory', 'memory.stat');
  if (stat !== undefined) {
    const s = (k: string) => stat.get(k) ?? 0n;
    const entry = (prefix: string): MemoryEntry | undefined => {
      const usage = value('memory', `${prefix}.usage_in_bytes`);
      if (usage === undefined) return undefined;
      return {
        $typeName: 'io.containerd.cgroups.v1.MemoryEntry',
        usage,
        limit: value('memory', `${prefix}.limit_in_bytes`) ?? 0n,
        max: value('memory', `${prefix}.max_usage_in_bytes`) ?? 0n,
        failcnt: value('memory', `${prefix}.failcnt`) ?? 0n,
      };
    };
    m.memory = {
      $typeName: 'io.containerd.cgroups.v1.MemoryStat',
      cache: s('cache'),
      rss: s('rss'),
      rssHuge: s('rss_huge'),
      mappedFile: s('mapped_file'),
      dirty: s('dirty'),
      writeback: s('writeback'),
      pgPgIn: s('pgpgin'),
      pgPgOut: s('pgpgout'),
      pgFault: s('pgfault'),
      pgMajFault: s('pgmajfault'),
      inactiveAnon: s('inactive_anon'),
      activeAnon: s('active_anon'),
      inactiveFile: s('inactive_file'),
      activeFile: s('active_file'),
      unevictable: s('unevictable'),
      hierarchicalMemoryLimit: s('hierarchical_memory_limit'),
      hierarchicalSwapLimit: s('hierarchical_memsw_limit'),
      totalCache: s('total_cache'),
      totalRss: s('total_rss'),
      totalRssHuge: s('total_rss_huge'),
      totalMappedFile: s('total_mapped_file'),
      totalDirty: s('total_dirty'),
      totalWriteback: s('total_writeback'),
      totalPgPgIn: s('total_pgpgin'),
      totalPgPgOut: s('total_pgpgout'),
      totalPgFault: s('total_pgfault'),
      totalPgMajFault: s('total_pgmajfault'),
      totalInactiveAnon: s('total_inactive_anon'),
      totalActiveAnon: s('total_active_anon'),
      totalInactiveFile: s('total_inactive_file'),
      totalActiveFile: s('total_active_file'),
      totalUnevictable: s('total_unevictable'),
      usage: entry('memory'),
      swap: entry('memory.memsw'),
      kernel: entry('memory.kmem'),
      kernelTcp: entry('memory.kmem.tcp'),
    };
  }
  const oom = keyed('memory', 'memory.oom_control');
  if (oom !== undefined) {
    m.memoryOomControl = {
      $typeName: 'io.containerd.cgroups.v1.MemoryOomControl',
      oomKillDisable: oom.get('oom_kill_disable') ?? 0n,
      underOom: oom.get('under_oom') ?? 0n,
      oomKill: oom.get('oom_kill') ?? 0n,
    };
  }

  m.blkio = blkio(read, deviceName);

  for (const file of list('hugetlb')) {
    const size = /^hugetlb\.([^.]+)\.usage_in_bytes$/.exec(file)?.[1];
    if (size === undefined) continue;
    m.hugetlb.push({
      $typeName: 'io.containerd.cgroups.v1.HugetlbStat',
      pagesize: size,
      usage: value('hugetlb', file) ?? 0n,
      max: value('hugetlb', `hugetlb.${size}.max_usage_in_bytes`) ?? 0n,
      failcnt: value('hugetlb', `hugetlb.${size}.failcnt`) ?? 0n,
    });
  }
  return m;
}

/**
 * blkio: the CFQ/BFQ `*_recursive` files when the scheduler provides them, else the throttle
 * layer's (always present), which is containerd's order too.
 */
function blkio(read: V1Reader, deviceName: DeviceNamer): Metrics['blkio'] {
  const entries = (file: string): BlkIOEntry[] | undefined => {
    const text = read('blkio', file);
    return text === undefined ? undefined : parseBlkioEntries(text, `blkio/${file}`, deviceName);
  };
  const serviced = entries('blkio.io_serviced_recursive');
  if (serviced === undefined || serviced.length === 0) {
    const bytes = entries('blkio.throttle.io_service_bytes_recursive');
    const ios = entries('blkio.throttle.io_serviced_recursive');
    if (bytes === undefined && ios === undefined) return undefined;
    return {
      $typeName: 'io.containerd.cgroups.v1.BlkIOStat',
      ioServiceBytesRecursive: bytes ?? [],
      ioServicedRecursive: ios ?? [],
      ioQueuedRecursive: [],
      ioServiceTimeRecursive: [],
      ioWaitTimeRecursive: [],
      ioMergedRecursive: [],
      ioTimeRecursive: [],
      sectorsRecursive: [],
    };
  }
  return {
    $typeName: 'io.containerd.cgroups.v1.BlkIOStat',
    ioServiceBytesRecursive: entries('blkio.io_service_bytes_recursive') ?? [],
    ioServicedRecursive: serviced,
    ioQueuedRecursive: entries('blkio.io_queued_recursive') ?? [],
    ioServiceTimeRecursive: entries('blkio.io_service_time_recursive') ?? [],
    ioWaitTimeRecursive: entries('blkio.io_wait_time_recursive') ?? [],
    ioMergedRecursive: entries('blkio.io_merged_recursive') ?? [],
    ioTimeRecursive: entries('blkio.time_recursive') ?? [],
    sectorsRecursive: entries('blkio.sectors_recursive') ?? [],
  };
}

/**
 * blkio files: `MAJ:MIN OP VALUE` lines (ops Read, Write, Sync, Async, Discard, Total) or
 * `MAJ:MIN VALUE` (time, sectors), plus a trailing `Total N` line that has no device and is
 * dropped, as containerd drops it.
 */
export function parseBlkioEntries(text: string, where: string, deviceName: DeviceNamer = () => ''): BlkIOEntry[] {
  const out: BlkIOEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const words = lines[i]!.trim().split(/\s+/).filter((w) => w !== '');
    if (words.length === 0) continue;
    if (words.length === 2 && words[0] === 'Total') continue;
    const dev = /^(\d+):(\d+)$/.exec(words[0]!);
    const val = words[words.length - 1]!;
    if (!dev || (words.length !== 2 && words.length !== 3) || !/^\d+$/.test(val)) {
      throw new CgroupParseError(`${where}:${i + 1}: expected "MAJ:MIN [OP] VALUE", got ${JSON.stringify(lines[i]!.slice(0, 60))}`);
    }
    const major = BigInt(dev[1]!);
    const minor = BigInt(dev[2]!);
    out.push(create(BlkIOEntrySchema, { major, minor, op: words.length === 3 ? words[1]! : '', value: BigInt(val), device: deviceName(major, minor) }));
  }
  return out;
}
