/**
 * Finds what a private containerd instance left on the host outside its own directory: processes,
 * mounts, shim sockets in /run/containerd/s, runc state entries, cgroup directories. Every match
 * uses an exact mark of the instance (its directory, its gRPC address, its unique namespace, or a
 * task id seen in its state dir), so nothing belonging to another instance or the host is reported
 * or, by the teardown that uses these lists, touched.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Compile-time constant in containerd 1.6 (`runtime/v2/shim/util_unix.go`), whatever `state` says. */
export const SHIM_SOCKET_DIR = '/run/containerd/s';
export const RUNC_ROOT_BASE = '/run/containerd/runc';

export interface InstanceIdentity {
  /** The harness's private temp dir; everything containerd writes on its own lives below it. */
  dir: string;
  grpcAddress: string;
  /** Unique to this instance, so anything named after it is ours. */
  namespace: string;
  stateDir: string;
  /** Parent dirs of OCI runtime roots, one subdir per namespace (runc: /run/containerd/runc). */
  runtimeRootBases: readonly string[];
}

/** A task bundle found under containerd's runtime-v2 state dir. */
export interface TaskRecord {
  namespace: string;
  id: string;
}

export interface LeftoverProcess {
  pid: number;
  cmdline: string;
  why: string;
}

export interface RuntimeEntry {
  root: string;
  id: string;
  bundle: string;
  status: string;
}

export interface Leftovers {
  processes: LeftoverProcess[];
  mounts: string[];
  sockets: string[];
  runtimeEntries: RuntimeEntry[];
  cgroups: string[];
  /** The harness dir itself, if it still exists. */
  files: string[];
}

export function isEmpty(l: Leftovers): boolean {
  return (
    l.processes.length + l.mounts.length + l.sockets.length + l.runtimeEntries.length + l.cgroups.length + l.files.length === 0
  );
}

export function describeLeftovers(l: Leftovers): string {
  const parts: string[] = [];
  for (const p of l.processes) parts.push(`process ${p.pid} (${p.why}): ${p.cmdline}`);
  for (const m of l.mounts) parts.push(`mount ${m}`);
  for (const s of l.sockets) parts.push(`socket ${s}`);
  for (const e of l.runtimeEntries) parts.push(`runtime entry ${e.root}/${e.id} (${e.status}, bundle ${e.bundle})`);
  for (const c of l.cgroups) parts.push(`cgroup ${c}`);
  for (const f of l.files) parts.push(`dir ${f}`);
  return parts.join('\n');
}

function within(dir: string, p: string): boolean {
  return p === dir || p.startsWith(`${dir}/`);
}

export function shimSocketPath(grpcAddress: string, namespace: string, groupKey: string): string {
  const hash = createHash('sha256').update(`${grpcAddress}/${namespace}/${groupKey}`).digest('hex');
  return path.join(SHIM_SOCKET_DIR, hash);
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Task bundles under `<state>/io.containerd.runtime.v2.task/<ns>/<id>`, with the shim sockets they
 * name: the `address` file the shim wrote, and the socket path the shim would compute (so a shim
 * killed before writing `address` is still covered).
 */
export function scanBundles(identity: InstanceIdentity): { tasks: TaskRecord[]; sockets: string[] } {
  const tasksDir = path.join(identity.stateDir, 'io.containerd.runtime.v2.task');
  const tasks: TaskRecord[] = [];
  const sockets: string[] = [];
  for (const namespace of listDir(tasksDir)) {
    for (const id of listDir(path.join(tasksDir, namespace))) {
      const bundle = path.join(tasksDir, namespace, id);
      tasks.push({ namespace, id });
      const address = readText(path.join(bundle, 'address'))?.trim();
      if (address?.startsWith('unix://')) sockets.push(address.slice('unix://'.length));
      sockets.push(shimSocketPath(identity.grpcAddress, namespace, groupKey(bundle, id)));
    }
  }
  return { tasks, sockets };
}

/**
 * Tasks containerd has logged a shim for ("starting signal loop ... path=<bundle>", level info),
 * including those whose bundle containerd already removed after their shim died: such a shim
 * leaves its socket behind, and the log is the only record of its id once the bundle is gone.
 */
export function scanLogForTasks(logFile: string, identity: InstanceIdentity): { tasks: TaskRecord[]; sockets: string[] } {
  const log = readText(logFile) ?? '';
  const tasksDir = path.join(identity.stateDir, 'io.containerd.runtime.v2.task');
  const escaped = tasksDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const tasks: TaskRecord[] = [];
  const sockets: string[] = [];
  for (const match of log.matchAll(new RegExp(`path=${escaped}/([^/\\s"]+)/([^/\\s"]+)`, 'g'))) {
    const [, namespace, id] = match;
    if (!namespace || !id) continue;
    tasks.push({ namespace, id });
    sockets.push(shimSocketPath(identity.grpcAddress, namespace, id));
  }
  return { tasks, sockets };
}

/** The shim grouping key: the runc shim's group annotation, CRI's sandbox id, else the task id. */
function groupKey(bundle: string, id: string): string {
  const spec = readText(path.join(bundle, 'config.json'));
  if (spec === undefined) return id;
  try {
    const annotations = (JSON.parse(spec) as { annotations?: Record<string, string> }).annotations ?? {};
    return annotations['io.containerd.runc.v2.group'] ?? annotations['io.kubernetes.cri.sandbox-id'] ?? id;
  } catch {
    return id;
  }
}

function ancestorsOfSelf(): Set<number> {
  const pids = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !pids.has(pid)) {
    pids.add(pid);
    const stat = readText(`/proc/${pid}/stat`);
    if (stat === undefined) break;
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return pids;
}

/** CRI's ids are 64 hex digits, unique enough to mark a cgroup by themselves (`<cgroup_parent>/<id>`). */
function isCriId(id: string): boolean {
  return /^[0-9a-f]{64}$/.test(id);
}

function cgroupMatches(cgroupFile: string, identity: InstanceIdentity, tasks: readonly TaskRecord[]): boolean {
  for (const line of cgroupFile.split('\n')) {
    const cgPath = line.split(':').slice(2).join(':');
    if (cgPath === '') continue;
    const segments = cgPath.split('/');
    if (segments.includes(identity.namespace)) return true;
    if (tasks.some((t) => cgPath.includes(`/${t.namespace}/${t.id}`) || (isCriId(t.id) && segments.includes(t.id)))) return true;
  }
  return false;
}

export interface ScannedProcess extends LeftoverProcess {
  /** Shim sockets derivable from a shim's argv (-namespace, -id, -address). */
  shimSocket?: string;
}

/**
 * Live processes of the instance: containerd itself (its argv names the harness dir), shims (argv
 * carries our gRPC address, cwd is a bundle), stream processors (cwd is containerd's, the harness
 * dir) and container processes (their cgroup path holds our namespace or a task of ours).
 * Zombies are left out: they hold nothing and only their parent can reap them.
 */
export function scanProcesses(identity: InstanceIdentity, tasks: readonly TaskRecord[]): ScannedProcess[] {
  const self = ancestorsOfSelf();
  const found: ScannedProcess[] = [];
  for (const entry of listDir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (self.has(pid)) continue;
    const stat = readText(`/proc/${pid}/stat`);
    if (stat === undefined) continue;
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
    const rawCmdline = readText(`/proc/${pid}/cmdline`) ?? '';
    if (rawCmdline === '') continue; // kernel thread or already gone
    const argv = rawCmdline.replace(/\0$/, '').split('\0');
    const cmdline = argv.join(' ');
    let why: string | undefined;
    if (argv.some((a) => within(identity.dir, a) || a === identity.grpcAddress)) why = 'argv names the instance';
    if (!why) {
      try {
        if (within(identity.dir, fs.readlinkSync(`/proc/${pid}/cwd`))) why = 'cwd inside the instance dir';
      } catch {
        // gone, or a kernel thread
      }
    }
    if (!why) {
      const cgroup = readText(`/proc/${pid}/cgroup`);
      if (cgroup !== undefined && cgroupMatches(cgroup, identity, tasks)) why = 'cgroup of an instance task';
    }
    if (!why) continue;
    const proc: ScannedProcess = { pid, cmdline, why };
    const flag = (name: string) => {
      const i = argv.indexOf(name);
      return i >= 0 ? argv[i + 1] : undefined;
    };
    const ns = flag('-namespace');
    const id = flag('-id');
    const address = flag('-address');
    if (ns && id && address === identity.grpcAddress) proc.shimSocket = shimSocketPath(address, ns, id);
    found.push(proc);
  }
  return found.sort((a, b) => a.pid - b.pid);
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

interface MountInfo {
  mountPoint: string;
  fsType: string;
}

function readMountInfo(): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const line of (readText('/proc/self/mountinfo') ?? '').split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    const mountPoint = fields[4];
    const fsType = fields[sep + 1];
    if (sep < 0 || mountPoint === undefined || fsType === undefined) continue;
    mounts.push({ mountPoint: unescapeMountPath(mountPoint), fsType });
  }
  return mounts;
}

/** Mount points at or below the instance dir, deepest first (the order to unmount them). */
export function scanMounts(dir: string): string[] {
  const points = readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => within(dir, p));
  return [...new Set(points)].sort((a, b) => b.split('/').length - a.split('/').length || b.localeCompare(a));
}

/** Runtime roots to inspect: our unique namespace's, plus those of shared namespaces we used. */
export function runtimeRoots(identity: InstanceIdentity, tasks: readonly TaskRecord[]): { root: string; own: boolean }[] {
  const namespaces = new Set([identity.namespace, ...tasks.map((t) => t.namespace)]);
  const roots: { root: string; own: boolean }[] = [];
  for (const base of identity.runtimeRootBases) {
    for (const ns of namespaces) roots.push({ root: path.join(base, ns), own: ns === identity.namespace });
  }
  return roots;
}

/**
 * Entries of one runtime root that belong to the instance: all of them in our own namespace's root,
 * only those whose bundle lies in the instance dir in a shared namespace's root. Reads runc's
 * state.json directly, so it works without the runtime binary and for crun-compatible layouts.
 */
export function scanRuntimeRoot(root: string, own: boolean, dir: string): RuntimeEntry[] {
  const entries: RuntimeEntry[] = [];
  for (const id of listDir(root)) {
    const stateFile = readText(path.join(root, id, 'state.json'));
    let bundle = '';
    let status = 'unknown';
    if (stateFile !== undefined) {
      try {
        const state = JSON.parse(stateFile) as { config?: { labels?: string[] }; init_process_pid?: number };
        bundle = state.config?.labels?.find((l) => l.startsWith('bundle='))?.slice('bundle='.length) ?? '';
        const pid = state.init_process_pid;
        status = pid && fs.existsSync(`/proc/${pid}`) ? `init pid ${pid} alive` : 'stopped';
      } catch {
        status = 'unreadable state.json';
      }
    }
    if (own || within(dir, bundle)) entries.push({ root, id, bundle, status });
  }
  return entries;
}

/**
 * Cgroup dirs the OCI runtime made for our tasks. `ctr` puts a task in `/<namespace>/<id>`, so the
 * whole `/<our namespace>` subtree is ours; in a shared namespace only `/<ns>/<task id>` is, and
 * CRI without a cgroup parent uses `/<64-hex id>`.
 */
export function scanCgroups(identity: InstanceIdentity, tasks: readonly TaskRecord[]): string[] {
  const hierarchies = readMountInfo()
    .filter((m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2')
    .map((m) => m.mountPoint);
  const found: string[] = [];
  for (const h of new Set(hierarchies)) {
    const candidates = [
      path.join(h, identity.namespace),
      ...tasks.filter((t) => t.namespace !== identity.namespace).map((t) => path.join(h, t.namespace, t.id)),
      ...tasks.filter((t) => isCriId(t.id)).map((t) => path.join(h, t.id)),
    ];
    for (const c of candidates) if (fs.existsSync(c)) found.push(c);
  }
  return found;
}

/** Removes a cgroup subtree: only rmdir works on cgroupfs, children first. */
export function removeCgroupTree(dir: string): void {
  for (const child of fs.readdirSync(dir, { withFileTypes: true })) {
    if (child.isDirectory()) removeCgroupTree(path.join(dir, child.name));
  }
  fs.rmdirSync(dir);
}
