/**
 * Finding a container's cgroup from /proc/<pid>/cgroup and /proc/self/mountinfo
 * (shims/outrigger-v2/cgroups/location.ts) for v1, hybrid and unified hosts, and a mount
 * whose root is not "/" (inside a cgroup namespace); then the live lookup of our own process.
 */
import { describe, expect, it } from 'vitest';
import { cgroupOfPid, locateCgroup, parseCgroupMounts, parseProcCgroup } from '../shims/outrigger-v2/cgroups/location.ts';
import { hostCgroupMode } from '../shims/outrigger-v2/cgroups/host-mode.ts';

const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
`;

describe('cgroup location', () => {
  it('parses /proc/<pid>/cgroup, v1 lines and the 0:: line', () => {
    const proc = parseProcCgroup('4:memory:/ns/c1\n2:cpu,cpuacct:/ns/c1\n1:name=systemd:/user.slice\n0::/ns/c1\n');
    expect([...proc.controllers]).toEqual([['memory', '/ns/c1'], ['cpu', '/ns/c1'], ['cpuacct', '/ns/c1'], ['name=systemd', '/user.slice']]);
    expect(proc.unified).toBe('/ns/c1');
    expect(() => parseProcCgroup('garbage\n')).toThrow(/malformed line/);
  });

  it('maps v1 controllers to their mount points on a hybrid host (comounted cpu,cpuacct included)', () => {
    const mounts = parseCgroupMounts(HYBRID_MOUNTINFO);
    expect(mounts.map((m) => [m.fsType, m.mountPoint, m.controllers.join(',')])).toEqual([
      ['cgroup', '/sys/fs/cgroup/cpu,cpuacct', 'cpu,cpuacct'],
      ['cgroup', '/sys/fs/cgroup/memory', 'memory'],
      ['cgroup', '/sys/fs/cgroup/systemd', 'xattr,name=systemd'],
      ['cgroup2', '/sys/fs/cgroup/unified', ''],
    ]);
    const where = locateCgroup(parseProcCgroup('4:memory:/ns/c1\n2:cpu,cpuacct:/ns/c1\n0::/\n'), mounts, false);
    expect(where).toEqual({
      version: 1,
      dirs: new Map([
        ['memory', '/sys/fs/cgroup/memory/ns/c1'],
        ['cpu', '/sys/fs/cgroup/cpu,cpuacct/ns/c1'],
        ['cpuacct', '/sys/fs/cgroup/cpu,cpuacct/ns/c1'],
      ]),
    });
  });

  it('on a unified host uses the 0:: path under the cgroup2 mount, relative to the mount root', () => {
    const mounts = parseCgroupMounts('30 23 0:26 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n');
    expect(locateCgroup(parseProcCgroup('0::/kubepods/pod1/c1\n'), mounts, true)).toEqual({ version: 2, dir: '/sys/fs/cgroup/pod1/c1' });
    expect(() => locateCgroup(parseProcCgroup('0::/elsewhere\n'), mounts, true)).toThrow(/outside the cgroup2 mount/);
  });

  it('finds the live cgroup of this test process on this host', () => {
    const where = cgroupOfPid(process.pid);
    if (hostCgroupMode() === 'unified') {
      expect(where.version).toBe(2);
    } else {
      expect(where.version).toBe(1);
      if (where.version === 1) expect(where.dirs.get('memory')).toMatch(/^\/sys\/fs\/cgroup\/memory/);
    }
  });
});
