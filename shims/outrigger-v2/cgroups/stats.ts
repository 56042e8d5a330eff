/**
 * Stats for the Task API: the cgroup metrics of a container as the Any containerd expects,
 * io.containerd.cgroups.v1.Metrics or v2.Metrics by where the cgroup lives (task-api.md §6).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Any } from '@bufbuild/protobuf/wkt';
import { MetricsSchema as V1MetricsSchema } from '../../../src/api/gen/io/containerd/cgroups/v1/metrics_pb.ts';
import { MetricsSchema as V2MetricsSchema } from '../../../src/api/gen/io/containerd/cgroups/v2/metrics_pb.ts';
import { packAny } from '../../../src/api/typeurl.ts';
import type { CgroupLocation } from './location.ts';
import { v1Metrics } from './v1-metrics.ts';
import { v2Metrics } from './v2-metrics.ts';

function readIfPresent(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOENT: the kernel lacks the file; EOPNOTSUPP/EINVAL: it exists but this kernel config cannot report it.
    if (code === 'ENOENT' || code === 'EOPNOTSUPP' || code === 'EINVAL' || code === 'ENODEV') return undefined;
    throw new Error(`cgroup stats: read ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function listIfPresent(dir: string | undefined): string[] {
  if (dir === undefined) return [];
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

const deviceNames = new Map<string, string>();

/** /dev/<DEVNAME> from /sys/dev/block/MAJ:MIN/uevent, as containerd names blkio devices. */
function blockDeviceName(major: bigint, minor: bigint): string {
  const key = `${major}:${minor}`;
  let name = deviceNames.get(key);
  if (name === undefined) {
    const uevent = readIfPresent(`/sys/dev/block/${key}/uevent`) ?? '';
    const dev = /^DEVNAME=(.+)$/m.exec(uevent)?.[1];
    name = dev ? `/dev/${dev}` : '';
    deviceNames.set(key, name);
  }
  return name;
}

export function cgroupStats(where: CgroupLocation): Any {
  if (where.version === 2) {
    const read = (file: string) => readIfPresent(path.join(where.dir, file));
    return packAny(V2MetricsSchema, v2Metrics(read, () => listIfPresent(where.dir)));
  }
  const read = (controller: string, file: string) => {
    const dir = where.dirs.get(controller);
    return dir === undefined ? undefined : readIfPresent(path.join(dir, file));
  };
  return packAny(V1MetricsSchema, v1Metrics(read, (controller) => listIfPresent(where.dirs.get(controller)), blockDeviceName));
}
