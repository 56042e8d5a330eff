/**
 * cgroup v2 → io.containerd.cgroups.v2.Metrics (shims/outrigger-v2/cgroups/v2-metrics.ts) from
 * a fixture cgroup directory written in the kernel's documented formats (this host is cgroup
 * v1, so v2 is only reachable this way), checked field by field against task-api.md §6.2, then
 * encoded and decoded as containerd would; plus properties of the file-format parsers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MetricsSchema } from '../src/api/gen/io/containerd/cgroups/v2/metrics_pb.ts';
import { CgroupParseError, parseFlatKeyed, parseSingleValue } from '../shims/outrigger-v2/cgroups/flat-keyed.ts';
import { oomKillCount } from '../shims/outrigger-v2/cgroups/oom-watch.ts';
import { UNLIMITED, parseIoStat, v2Metrics } from '../shims/outrigger-v2/cgroups/v2-metrics.ts';

const dir = path.join(import.meta.dirname, 'fixtures/cgroups/v2');
const read = (file: string) => (fs.existsSync(path.join(dir, file)) ? fs.readFileSync(path.join(dir, file), 'utf8') : undefined);
const list = () => fs.readdirSync(dir);

describe('v2 metrics from a cgroup directory', () => {
  const m = v2Metrics(read, list);

  it('pids, cpu (µs) and memory events', () => {
    expect(m.pids).toMatchObject({ current: 3n, limit: UNLIMITED });
    expect(m.cpu).toMatchObject({ usageUsec: 1200345n, userUsec: 800200n, systemUsec: 400145n, nrPeriods: 50n, nrThrottled: 7n, throttledUsec: 91000n });
    expect(m.memoryEvents).toMatchObject({ low: 0n, high: 2n, max: 5n, oom: 3n, oomKill: 1n });
  });

  it('memory: memory.stat keys, usage/limit/swap/peak from their own files', () => {
    expect(m.memory).toMatchObject({
      anon: 4194304n,
      file: 5242880n,
      kernelStack: 65536n,
      slab: 393216n,
      sock: 4096n,
      shmem: 8192n,
      fileMapped: 1048576n,
      fileDirty: 12288n,
      fileWriteback: 16384n,
      anonThp: 2097152n,
      inactiveAnon: 3145728n,
      activeAnon: 1048576n,
      inactiveFile: 4194304n,
      activeFile: 1048576n,
      unevictable: 20480n,
      slabReclaimable: 262144n,
      slabUnreclaimable: 131072n,
      pgfault: 29029n,
      pgmajfault: 31n,
      // split counters (kernel ≥ 5.9) add up to the old single one
      workingsetRefault: 14n,
      workingsetActivate: 18n,
      workingsetNodereclaim: 17n,
      pgrefill: 37n,
      pgscan: 19n,
      pgsteal: 23n,
      pgactivate: 41n,
      pgdeactivate: 43n,
      pglazyfree: 47n,
      pglazyfreed: 53n,
      thpFaultAlloc: 59n,
      thpCollapseAlloc: 61n,
      usage: 10485760n,
      usageLimit: 268435456n,
      swapUsage: 0n,
      swapLimit: UNLIMITED,
      maxUsage: 20971520n,
      swapMaxUsage: 0n,
    });
  });

  it('io.stat per device, unknown keys skipped; hugetlb per page size', () => {
    expect(m.io?.usage.map((e) => [e.major, e.minor, e.rbytes, e.wbytes, e.rios, e.wios])).toEqual([
      [8n, 16n, 1459200n, 314773504n, 192n, 353n],
      [8n, 0n, 90430464n, 299008000n, 8950n, 1252n],
    ]);
    expect(m.hugetlb.map((h) => [h.pagesize, h.current, h.max]).sort()).toEqual([
      ['1GB', 2097152n, 1073741824n],
      ['2MB', 0n, UNLIMITED],
    ]);
  });

  it('survives the wire: what containerd decodes is what was read', () => {
    expect(fromBinary(MetricsSchema, toBinary(MetricsSchema, m))).toEqual(m);
  });

  it('a cgroup without controllers gives only what exists (cpu.stat is always there)', () => {
    const bare = v2Metrics((f) => (f === 'cpu.stat' ? 'usage_usec 5\nuser_usec 3\nsystem_usec 2\n' : undefined));
    expect(bare.cpu?.usageUsec).toBe(5n);
    expect(bare.memory).toBeUndefined();
    expect(bare.pids).toBeUndefined();
    expect(bare.io).toBeUndefined();
  });

  it('a malformed file is an error naming the file and line, not a zero', () => {
    expect(() => v2Metrics((f) => (f === 'memory.stat' ? 'anon 1\nfile lots\n' : undefined))).toThrow('memory.stat:2: expected "KEY VALUE", got "file lots"');
    expect(() => v2Metrics((f) => (f === 'memory.current' ? 'x' : f === 'memory.stat' ? '' : undefined))).toThrow(CgroupParseError);
    expect(() => parseIoStat('sda rbytes=1')).toThrow('io.stat:1');
  });
});

describe('file format parsers', () => {
  const key = fc.stringMatching(/^[a-z][a-z0-9_.]{0,20}$/);
  const u64 = fc.bigInt({ min: 0n, max: UNLIMITED });

  it('flat keyed: any map written the kernel’s way reads back the same', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(key, u64), { selector: ([k]) => k, maxLength: 40 }), fc.constantFrom('\n', '\n\n'), (entries, tail) => {
        const text = entries.map(([k, v]) => `${k} ${v}`).join('\n') + tail;
        expect(parseFlatKeyed(text, 'f')).toEqual(new Map(entries));
      }),
    );
  });

  it('single values: digits read exactly, "max" as asked, anything else refused', () => {
    fc.assert(
      fc.property(u64, (v) => {
        expect(parseSingleValue(`${v}\n`, 0n, 'f')).toBe(v);
      }),
    );
    expect(parseSingleValue('max\n', UNLIMITED, 'f')).toBe(UNLIMITED);
    expect(parseSingleValue('', 0n, 'f')).toBeUndefined();
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !/^\s*(\d+|max)?\s*$/.test(s)), (s) => {
        expect(() => parseSingleValue(s, 0n, 'f')).toThrow(CgroupParseError);
      }),
    );
  });

  it('io.stat lines: any devices and counters read back', () => {
    const entry = fc.record({ major: fc.bigInt({ min: 0n, max: 4095n }), minor: fc.bigInt({ min: 0n, max: 1048575n }), rbytes: u64, wbytes: u64, rios: u64, wios: u64 });
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 8 }), (entries) => {
        const text = entries.map((e) => `${e.major}:${e.minor} rbytes=${e.rbytes} wbytes=${e.wbytes} rios=${e.rios} wios=${e.wios} dbytes=0 dios=0`).join('\n');
        expect(parseIoStat(text).map((e) => ({ major: e.major, minor: e.minor, rbytes: e.rbytes, wbytes: e.wbytes, rios: e.rios, wios: e.wios }))).toEqual(entries);
      }),
    );
  });

  it('memory.events oom_kill, for the v2 OOM watch', () => {
    expect(oomKillCount(fs.readFileSync(path.join(dir, 'memory.events'), 'utf8'))).toBe(1n);
    expect(oomKillCount('low 0\nhigh 0\n')).toBe(0n);
  });
});
