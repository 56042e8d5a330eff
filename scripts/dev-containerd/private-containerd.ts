/**
 * A private containerd 1.6 for tests and demos: its own root, state, sockets and config in a fresh
 * temp dir, a unique namespace, and a teardown that removes everything it made even after a test
 * failed, a shim was SIGKILLed, or containerd itself died. What is NOT private on one host (runc
 * state under /run/containerd/runc/<ns>, shim sockets in /run/containerd/s, overlay mounts left by
 * dead shims, cgroup dirs) is found by exact marks of the instance and cleaned; see instance-scan.ts.
 *
 * Never touches the system containerd, /run/containerd/containerd.sock or /var/lib/containerd.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { type ContainerdConfigOptions, type ContainerdPaths, containerdConfigToml } from './containerd-config.ts';
import {
  describeLeftovers,
  type InstanceIdentity,
  isEmpty,
  type Leftovers,
  RUNC_ROOT_BASE,
  removeCgroupTree,
  runtimeRoots,
  scanBundles,
  scanLogForTasks,
  scanCgroups,
  scanMounts,
  scanProcesses,
  scanRuntimeRoot,
  type TaskRecord,
} from './instance-scan.ts';

export type { Leftovers } from './instance-scan.ts';
export { describeLeftovers, isEmpty as leftoversEmpty, shimSocketPath } from './instance-scan.ts';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const DIST_BIN = path.join(REPO_ROOT, 'dist/bin');
export const SYSTEM_CONTAINERD = '/usr/bin/containerd';
export const SYSTEM_CTR = '/usr/bin/ctr';

/** An OCI runtime whose per-namespace state root must be swept on teardown. */
export interface OciRuntimeRoot {
  binary: string;
  /** Parent of the per-namespace roots, e.g. /run/containerd/runc. */
  rootBase: string;
}

export interface PrivateContainerdOptions extends ContainerdConfigOptions {
  /** Namespace for ctr calls; default a fresh unique one (runc state is keyed by namespace). */
  namespace?: string;
  /** Dirs put first on containerd's PATH; default [dist/bin], so shims/processors resolve by bare name. */
  binDirs?: string[];
  /** Extra environment for containerd (and so for shims and stream processors). */
  env?: Record<string, string>;
  containerdBinary?: string;
  ctrBinary?: string;
  /** Parent of the instance dir; default os.tmpdir(). Keep it short: unix socket paths max 107 bytes. */
  baseDir?: string;
  /** How long to wait for the socket to answer. Default 30 s. */
  startTimeoutMs?: number;
  /** Runtime roots to sweep; default runc under /run/containerd/runc. */
  ociRuntimes?: OciRuntimeRoot[];
}

export interface CtrOptions {
  /** Default: the instance namespace. */
  namespace?: string;
  /** Default 60 s; the process is killed after it. */
  timeoutMs?: number;
  /** Text for ctr's stdin; without it stdin is /dev/null. */
  input?: string;
  /** Throw (with the command, exit code and output) when ctr exits non-zero. Default false. */
  check?: boolean;
}

export interface CtrResult {
  command: string;
  stdout: string;
  stderr: string;
  exitCode: number;
  timedOut: boolean;
}

export interface RunOptions {
  image: string;
  /** Container id; default a fresh unique one. */
  id?: string;
  /** Command and arguments; default the image's Cmd. */
  args?: string[];
  /** Runtime name, e.g. io.containerd.runc.v2 (the default) or io.containerd.outrigger.v2. */
  runtime?: string;
  /** `ctr run -d`: leave the task running; no --rm. */
  detach?: boolean;
  env?: Record<string, string>;
  /** More `ctr run` flags, placed before the image. */
  flags?: string[];
  namespace?: string;
  timeoutMs?: number;
  input?: string;
}

export interface RunResult extends CtrResult {
  id: string;
}

const idCounter = { next: 0 };

/** Ids unique across instances and runs: runc state and shim sockets outlive a crashed harness. */
export function uniqueId(prefix = 'c'): string {
  idCounter.next += 1;
  return `${prefix}-${process.pid}-${idCounter.next}-${randomBytes(3).toString('hex')}`;
}

function tail(file: string, lines = 40): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Whether pid names a running process: present in /proc and not a zombie awaiting its reaper. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

async function waitGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(pidAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(50);
    alive = alive.filter(pidAlive);
  }
  return alive;
}

export class PrivateContainerd {
  readonly dir: string;
  readonly namespace: string;
  readonly paths: ContainerdPaths;
  readonly configFile: string;
  readonly logFile: string;
  /** Where ctr() puts task stdio FIFOs (see withFifoDir). */
  readonly fifoDir: string;
  readonly options: PrivateContainerdOptions;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private alive = false;
  private stopping: Promise<void> | undefined;
  /** Everything ever seen of the instance outside its dir, so leftovers() works after the dir is gone. */
  private readonly knownSockets = new Set<string>();
  private readonly knownTasks = new Map<string, TaskRecord>();
  private readonly ociRuntimes: OciRuntimeRoot[];

  private constructor(dir: string, options: PrivateContainerdOptions) {
    this.dir = dir;
    this.options = options;
    this.namespace = options.namespace ?? `outrigger-${randomBytes(5).toString('hex')}`;
    this.paths = {
      root: path.join(dir, 'root'),
      state: path.join(dir, 'state'),
      grpcAddress: path.join(dir, 'containerd.sock'),
      ttrpcAddress: path.join(dir, 'containerd.sock.ttrpc'),
      optDir: path.join(dir, 'opt'),
      cniBinDir: path.join(dir, 'cni/bin'),
      cniConfDir: path.join(dir, 'cni/conf'),
    };
    this.configFile = path.join(dir, 'config.toml');
    this.logFile = path.join(dir, 'containerd.log');
    this.fifoDir = path.join(dir, 'fifo');
    this.ociRuntimes = options.ociRuntimes ?? [{ binary: '/usr/bin/runc', rootBase: RUNC_ROOT_BASE }];
  }

  /** Starts containerd and waits until it answers; on failure everything made so far is removed. */
  static async start(options: PrivateContainerdOptions = {}): Promise<PrivateContainerd> {
    const dir = fs.mkdtempSync(path.join(options.baseDir ?? os.tmpdir(), 'ord-'));
    const instance = new PrivateContainerd(dir, options);
    try {
      await instance.launch();
    } catch (err) {
      await instance.stop().catch((stopErr: unknown) => {
        (err as Error).message += `\n(teardown after the failed start also failed: ${(stopErr as Error).message})`;
      });
      throw err;
    }
    return instance;
  }

  get address(): string {
    return this.paths.grpcAddress;
  }

  /** containerd's pid while it runs (tests kill it to exercise the crash path). */
  get pid(): number | undefined {
    return this.alive ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.alive;
  }

  /**
   * Kills containerd with `signal` and starts it again on the same config, state and sockets
   * (shims keep running meanwhile): the restart/recovery path of runtime v2.
   */
  async restart(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.remember();
    if (this.alive) {
      this.child?.kill(signal);
      await this.exited;
    }
    await this.launch();
  }

  private identity(): InstanceIdentity {
    return {
      dir: this.dir,
      grpcAddress: this.paths.grpcAddress,
      namespace: this.namespace,
      stateDir: this.paths.state,
      runtimeRootBases: this.ociRuntimes.map((r) => r.rootBase),
    };
  }

  private async launch(): Promise<void> {
    for (const d of [this.paths.root, this.paths.state, this.paths.optDir, this.paths.cniBinDir, this.paths.cniConfDir]) {
      fs.mkdirSync(d, { recursive: true });
    }
    const tmp = path.join(this.dir, 'tmp');
    fs.mkdirSync(tmp, { recursive: true });
    fs.mkdirSync(this.fifoDir, { recursive: true });
    // Written once: a restart keeps whatever was merged into the file meanwhile (outrigger install).
    if (!fs.existsSync(this.configFile)) {
      fs.writeFileSync(this.configFile, containerdConfigToml(this.paths, this.options));
    }
    const binDirs = this.options.binDirs ?? [DIST_BIN];
    // A small explicit environment: nothing from the test runner (NODE_OPTIONS, VITEST_*) leaks
    // into containerd and from there into our Node-based shims and processors.
    const env: Record<string, string> = {
      PATH: [...binDirs, process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'].join(':'),
      HOME: process.env.HOME ?? '/root',
      LANG: 'C.UTF-8',
      TMPDIR: tmp,
      ...this.options.env,
    };
    const log = fs.openSync(this.logFile, 'a');
    try {
      const binary = this.options.containerdBinary ?? SYSTEM_CONTAINERD;
      const child = spawn(binary, ['--config', this.configFile], { cwd: this.dir, env, stdio: ['ignore', log, log] });
      this.child = child;
      this.alive = true;
      this.exited = new Promise<void>((resolve) => {
        child.once('exit', () => {
          this.alive = false;
          resolve();
        });
        child.once('error', (err) => {
          fs.appendFileSync(this.logFile, `\nspawn ${binary} failed: ${err.message}\n`);
          this.alive = false;
          resolve();
        });
      });
    } finally {
      fs.closeSync(log);
    }
    await this.waitReady(this.options.startTimeoutMs ?? 30_000);
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: CtrResult | undefined;
    while (Date.now() < deadline) {
      if (!this.alive) {
        throw new Error(
          `containerd (${this.dir}) exited during start (code ${this.child?.exitCode}, signal ${this.child?.signalCode}); log tail:\n${tail(this.logFile)}`,
        );
      }
      if (fs.existsSync(this.paths.grpcAddress)) {
        last = await this.ctr(['version'], { timeoutMs: 5_000, namespace: this.namespace });
        if (last.exitCode === 0) return;
      }
      await sleep(100);
    }
    throw new Error(
      `containerd (${this.dir}) did not answer on ${this.paths.grpcAddress} within ${timeoutMs} ms` +
        `${last ? ` (last ctr version: exit ${last.exitCode}: ${last.stderr.trim()})` : ''}; log tail:\n${tail(this.logFile)}`,
    );
  }

  /** Runs /usr/bin/ctr against this instance. */
  async ctr(args: readonly string[], opts: CtrOptions = {}): Promise<CtrResult> {
    const namespace = opts.namespace ?? this.namespace;
    const fullArgs = ['--address', this.paths.grpcAddress, '--namespace', namespace, ...this.withFifoDir(args)];
    const binary = this.options.ctrBinary ?? SYSTEM_CTR;
    const r = await execa(binary, fullArgs, {
      reject: false,
      timeout: opts.timeoutMs ?? 60_000,
      ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' as const }),
      stripFinalNewline: false,
    });
    const result: CtrResult = {
      command: `ctr ${fullArgs.join(' ')}`,
      stdout: String(r.stdout ?? ''),
      stderr: String(r.stderr ?? ''),
      exitCode: r.exitCode ?? -1,
      timedOut: r.timedOut,
    };
    if (opts.check && result.exitCode !== 0) {
      throw new Error(
        `${result.command} failed (exit ${result.exitCode}${result.timedOut ? ', timed out' : ''}):\n${result.stderr}${result.stdout}`,
      );
    }
    return result;
  }

  /**
   * ctr keeps a task's stdio FIFOs in /run/containerd/fifo and never removes them after `run -d`;
   * for the commands that create FIFOs, put them in the instance dir unless the caller chose a dir.
   */
  private withFifoDir(args: readonly string[]): string[] {
    const [cmd, sub] = args;
    const makesFifos = cmd === 'run' || ((cmd === 'tasks' || cmd === 'task' || cmd === 't') && (sub === 'start' || sub === 'exec'));
    if (!makesFifos || args.some((a) => a === '--fifo-dir' || a.startsWith('--fifo-dir='))) return [...args];
    const at = cmd === 'run' ? 1 : 2;
    return [...args.slice(0, at), '--fifo-dir', this.fifoDir, ...args.slice(at)];
  }

  /** `ctr images import FILE` into the instance namespace (or opts.namespace); throws on failure. */
  async importImage(file: string, opts: { namespace?: string; args?: string[]; timeoutMs?: number } = {}): Promise<CtrResult> {
    return this.ctr(['images', 'import', ...(opts.args ?? []), file], {
      namespace: opts.namespace,
      timeoutMs: opts.timeoutMs ?? 120_000,
      check: true,
    });
  }

  /** `ctr run [--rm|-d] --runtime R IMAGE ID [ARGS]`; ctr's exit code is the container's. */
  async run(opts: RunOptions): Promise<RunResult> {
    const id = opts.id ?? uniqueId('run');
    const args = ['run', opts.detach ? '-d' : '--rm', '--runtime', opts.runtime ?? 'io.containerd.runc.v2'];
    for (const [k, v] of Object.entries(opts.env ?? {})) args.push('--env', `${k}=${v}`);
    args.push(...(opts.flags ?? []), opts.image, id, ...(opts.args ?? []));
    const r = await this.ctr(args, { namespace: opts.namespace, timeoutMs: opts.timeoutMs, input: opts.input });
    return { ...r, id };
  }

  /** Records what the instance has made so far (for teardown and for leftovers after it). */
  private remember(): TaskRecord[] {
    for (const { tasks, sockets } of [scanBundles(this.identity()), scanLogForTasks(this.logFile, this.identity())]) {
      for (const s of sockets) this.knownSockets.add(s);
      for (const t of tasks) this.knownTasks.set(`${t.namespace}/${t.id}`, t);
    }
    const known = [...this.knownTasks.values()];
    for (const p of scanProcesses(this.identity(), known)) if (p.shimSocket) this.knownSockets.add(p.shimSocket);
    return known;
  }

  /** Everything of this instance still present on the host (containerd included while it runs). */
  leftovers(): Leftovers {
    const tasks = this.remember();
    const identity = this.identity();
    return {
      processes: scanProcesses(identity, tasks).map(({ pid, cmdline, why }) => ({ pid, cmdline, why })),
      mounts: scanMounts(this.dir),
      sockets: [...this.knownSockets].filter((s) => fs.existsSync(s)).sort(),
      runtimeEntries: runtimeRoots(identity, tasks).flatMap((r) => scanRuntimeRoot(r.root, r.own, this.dir)),
      cgroups: scanCgroups(identity, tasks),
      files: fs.existsSync(this.dir) ? [this.dir] : [],
    };
  }

  /**
   * Removes everything the instance made. Safe to call more than once and after any failure; every
   * step runs even if an earlier one failed, and the errors are reported together at the end.
   */
  stop(): Promise<void> {
    this.stopping ??= this.teardown();
    return this.stopping;
  }

  private async teardown(): Promise<void> {
    const errors: string[] = [];
    const step = async (what: string, fn: () => unknown) => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    this.remember();

    if (this.alive) await step('delete tasks and containers through containerd', () => this.deleteThroughContainerd());
    await step('stop containerd', () => this.stopContainerd());
    const tasks = this.remember();
    await step('delete runtime state', () => this.deleteRuntimeEntries(tasks));
    await step('kill instance processes', () => this.killProcesses(tasks));
    // A container whose shim died is only now stopped; runc refuses nothing after `delete -f`.
    await step('delete runtime state (second pass)', () => this.deleteRuntimeEntries(tasks));
    await step('remove shim sockets', () => {
      for (const s of this.knownSockets) fs.rmSync(s, { force: true });
    });
    await step('unmount', () => this.unmountAll());
    await step('remove runtime roots', () => {
      for (const r of runtimeRoots(this.identity(), tasks)) {
        if (r.own) fs.rmSync(r.root, { recursive: true, force: true });
      }
    });
    await step('remove cgroups', () => {
      for (const c of scanCgroups(this.identity(), tasks)) removeCgroupTree(c);
    });
    await step('remove instance dir', () => {
      const mounted = scanMounts(this.dir);
      // rm -rf across a mount could reach outside the instance; leave the dir and say why.
      if (mounted.length > 0) throw new Error(`still mounted below it:\n${mounted.join('\n')}`);
      fs.rmSync(this.dir, { recursive: true, force: true });
    });

    const left = this.leftovers();
    if (!isEmpty(left)) errors.push(`left behind:\n${describeLeftovers(left)}`);
    if (errors.length > 0) {
      throw new Error(`teardown of private containerd ${this.dir} (namespace ${this.namespace}):\n${errors.join('\n')}`);
    }
  }

  private async deleteThroughContainerd(): Promise<void> {
    const ctrOpts = { timeoutMs: 20_000 };
    const nsList = await this.ctr(['namespaces', 'ls', '-q'], ctrOpts);
    const namespaces = new Set(nsList.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
    for (const namespace of namespaces) {
      const tasks = await this.ctr(['tasks', 'ls', '-q'], { ...ctrOpts, namespace });
      for (const id of tasks.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
        await this.ctr(['tasks', 'kill', '--signal', 'SIGKILL', '--all', id], { ...ctrOpts, namespace });
        await this.ctr(['tasks', 'delete', '--force', id], { ...ctrOpts, namespace });
      }
      const containers = await this.ctr(['containers', 'ls', '-q'], { ...ctrOpts, namespace });
      for (const id of containers.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
        await this.ctr(['containers', 'delete', id], { ...ctrOpts, namespace });
      }
    }
  }

  private async stopContainerd(): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    child.kill('SIGTERM');
    // The grace timer is aborted once containerd is gone, so it never holds the caller's event loop.
    const grace = new AbortController();
    const stopped = await Promise.race([
      this.exited?.then(() => true),
      sleep(10_000, undefined, { signal: grace.signal }).then(
        () => false,
        () => true,
      ),
    ]);
    grace.abort();
    if (!stopped) {
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  private async deleteRuntimeEntries(tasks: readonly TaskRecord[]): Promise<void> {
    const failures: string[] = [];
    for (const runtime of this.ociRuntimes) {
      for (const r of runtimeRoots(this.identity(), tasks)) {
        if (!r.root.startsWith(`${runtime.rootBase}/`)) continue;
        for (const entry of scanRuntimeRoot(r.root, r.own, this.dir)) {
          const res = await execa(runtime.binary, ['--root', r.root, 'delete', '--force', entry.id], {
            reject: false,
            timeout: 20_000,
            stdin: 'ignore',
          });
          if (res.exitCode !== 0) failures.push(`${runtime.binary} --root ${r.root} delete -f ${entry.id}: ${String(res.stderr).trim()}`);
        }
      }
    }
    // A failure is only worth reporting if the entry is still there afterwards (see teardown's leftovers check).
    if (failures.length > 0 && this.leftovers().runtimeEntries.length > 0) throw new Error(failures.join('\n'));
  }

  private async killProcesses(tasks: readonly TaskRecord[]): Promise<void> {
    let procs = scanProcesses(this.identity(), tasks);
    for (let round = 0; round < 3 && procs.length > 0; round++) {
      for (const p of procs) {
        if (p.shimSocket) this.knownSockets.add(p.shimSocket);
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await waitGone(
        procs.map((p) => p.pid),
        5_000,
      );
      procs = scanProcesses(this.identity(), tasks);
    }
    if (procs.length > 0) throw new Error(`still running: ${procs.map((p) => `${p.pid} ${p.cmdline}`).join('; ')}`);
  }

  private async unmountAll(): Promise<void> {
    for (let round = 0; round < 3; round++) {
      const mounts = scanMounts(this.dir);
      if (mounts.length === 0) return;
      for (const m of mounts) {
        const r = await execa('umount', [m], { reject: false, stdin: 'ignore' });
        if (r.exitCode !== 0) {
          // Busy even though every process of ours is gone: detach it so the dir can go.
          await execa('umount', ['--lazy', m], { reject: false, stdin: 'ignore' });
        }
      }
    }
    const remaining = scanMounts(this.dir);
    if (remaining.length > 0) throw new Error(`could not unmount:\n${remaining.join('\n')}`);
  }
}

/** Convenience for scripts: `const ctd = await startPrivateContainerd({ cri: true })`. */
export function startPrivateContainerd(options: PrivateContainerdOptions = {}): Promise<PrivateContainerd> {
  return PrivateContainerd.start(options);
}
