/**
 * How the host mounts cgroups, which decides the Stats payload (task-api.md §6): `unified`
 * (/sys/fs/cgroup is cgroup2: v2 metrics) or `legacy`/`hybrid` (v1 controllers; hybrid also
 * has a controller-less cgroup2 at /sys/fs/cgroup/unified, which runc does not use for
 * resources, so both get v1 metrics). Decided by the file system type, as runc and
 * containerd's cgroups library do.
 */
import fs from 'node:fs';

export type CgroupMode = 'legacy' | 'hybrid' | 'unified';

const CGROUP2_SUPER_MAGIC = 0x63677270;

export const CGROUP_ROOT = '/sys/fs/cgroup';

function isCgroup2(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

let cached: CgroupMode | undefined;

export function hostCgroupMode(root = CGROUP_ROOT): CgroupMode {
  if (root === CGROUP_ROOT && cached !== undefined) return cached;
  const mode: CgroupMode = isCgroup2(root) ? 'unified' : isCgroup2(`${root}/unified`) ? 'hybrid' : 'legacy';
  if (root === CGROUP_ROOT) cached = mode;
  return mode;
}
