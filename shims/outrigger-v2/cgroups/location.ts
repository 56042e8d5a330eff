/**
 * Where a container's cgroup lives, found from its init pid the way containerd's cgroups
 * library does (`PidPath`): /proc/<pid>/cgroup names the cgroup per hierarchy and
 * /proc/self/mountinfo says where each hierarchy is mounted. This works whatever cgroupsPath
 * style made it (cgroupfs "/ns/id" or systemd "slice:prefix:name"). Resolved once, while the
 * process is alive, and kept: Stats after the exit still reads the cgroup runc removes only
 * at delete.
 */
import fs from 'node:fs';
import path from 'node:path';
import { hostCgroupMode } from './host-mode.ts';

export type CgroupLocation =
  /** cgroup v1: one directory per controller (cpu, cpuacct, memory, blkio, pids, hugetlb…). */
  | { readonly version: 1; readonly dirs: ReadonlyMap<string, string> }
  /** cgroup v2: the one unified directory. */
  | { readonly version: 2; readonly dir: string };

export interface ProcCgroup {
  /** v1 controller → cgroup path ("name=systemd" kept as written). */
  readonly controllers: ReadonlyMap<string, string>;
  /** The `0::/path` line, when there is one. */
  readonly unified: string | undefined;
}

/** Parses /proc/<pid>/cgroup: `hierarchy-id:controller,list:/path` per line. */
export function parseProcCgroup(text: string): ProcCgroup {
  const controllers = new Map<string, string>();
  let unified: string | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) throw new Error(`/proc/<pid>/cgroup: malformed line ${JSON.stringify(line)}`);
    const list = line.slice(first + 1, second);
    const cgPath = line.slice(second + 1);
    if (line.slice(0, first) === '0' && list === '') unified = cgPath;
    else for (const c of list.split(',')) if (c !== '') controllers.set(c, cgPath);
  }
  return { controllers, unified };
}

export interface CgroupMount {
  readonly fsType: 'cgroup' | 'cgroup2';
  /** The cgroup the mount shows as its root (not "/" inside a cgroup namespace or bind mount). */
  readonly root: string;
  readonly mountPoint: string;
  /** v1 controllers from the super options (empty for cgroup2). */
  readonly controllers: readonly string[];
}

/** The cgroup mounts in /proc/self/mountinfo (fields per proc(5); octal escapes in paths decoded). */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const left = line.slice(0, dash).split(' ');
    const [fsType, , superOptions = ''] = line.slice(dash + 3).split(' ');
    if (fsType !== 'cgroup' && fsType !== 'cgroup2') continue;
    const root = unescape(left[3] ?? '/');
    const mountPoint = unescape(left[4] ?? '');
    const controllers = fsType === 'cgroup' ? superOptions.split(',').filter((o) => (o !== 'rw' && o !== 'ro' && !o.includes('=')) || o.startsWith('name=')) : [];
    out.push({ fsType, root, mountPoint, controllers });
  }
  return out;
}

/** The directory of cgroup `cgPath` under `mount`, or undefined if the mount does not show it. */
function dirUnder(mount: CgroupMount, cgPath: string): string | undefined {
  const rel = path.posix.relative(mount.root, cgPath);
  if (rel.startsWith('..')) return undefined;
  return path.join(mount.mountPoint, rel);
}

export function locateCgroup(proc: ProcCgroup, mounts: readonly CgroupMount[], unifiedHost: boolean): CgroupLocation {
  if (unifiedHost) {
    const mount = mounts.find((m) => m.fsType === 'cgroup2');
    if (!mount || proc.unified === undefined) throw new Error('cgroup v2 host, but no cgroup2 mount or no 0:: line for the process');
    const dir = dirUnder(mount, proc.unified);
    if (dir === undefined) throw new Error(`cgroup ${proc.unified} is outside the cgroup2 mount at ${mount.mountPoint}`);
    return { version: 2, dir };
  }
  const dirs = new Map<string, string>();
  for (const [controller, cgPath] of proc.controllers) {
    const mount = mounts.find((m) => m.fsType === 'cgroup' && m.controllers.includes(controller));
    const dir = mount && dirUnder(mount, cgPath);
    if (dir !== undefined) dirs.set(controller, dir);
  }
  return { version: 1, dirs };
}

/** The cgroup of a live process, on this host. */
export function cgroupOfPid(pid: number): CgroupLocation {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch (err) {
    throw new Error(`cgroup of pid ${pid}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const mounts = parseCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  return locateCgroup(parseProcCgroup(text), mounts, hostCgroupMode() === 'unified');
}
