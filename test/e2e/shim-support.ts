/**
 * Shared pieces of the shim e2e tests: the test image, /proc lookups for our shim processes,
 * polling helpers. Real containerd, real runc; nothing here fakes a result.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect } from 'vitest';
import { DIST_BIN } from '../../scripts/dev-containerd/private-containerd.ts';
import { type BuiltImage, buildTestImages } from '../../scripts/test-images.ts';
import { type PrivateContainerd, uniqueId } from './harness.ts';

export const OUTRIGGER = 'io.containerd.outrigger.v2';

/**
 * A bin dir holding this moment's dist/bin/outrigger under the shim's name, for containerd's
 * PATH: other work rebuilds dist/ at any time (the build removes dist/bin first), and a task
 * must not find its shim binary gone half-way through a test. A hard link pins the inode.
 */
export function pinnedShimBinDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shim-bin-'));
  const target = path.join(dir, 'outrigger');
  const source = fs.realpathSync(path.join(DIST_BIN, 'outrigger'));
  try {
    fs.linkSync(source, target);
  } catch {
    fs.copyFileSync(source, target);
    fs.chmodSync(target, 0o755);
  }
  fs.symlinkSync('outrigger', path.join(dir, 'containerd-shim-outrigger-v2'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
export const RUNC_V2 = 'io.containerd.runc.v2';

/** Builds one tar-layer busybox image for the file's tests; call at file level. */
export function useTestImage(): () => BuiltImage {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shim-images-'));
  let image: BuiltImage | undefined;
  beforeAll(async () => {
    const built = await buildTestImages({ outDir: dir, media: ['tar'], salt: `shim-${process.pid}` });
    image = built[0];
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return () => {
    if (!image) throw new Error('test image was not built');
    return image;
  };
}

export interface ProcInfo {
  readonly pid: number;
  readonly argv: readonly string[];
  readonly cwd: string | undefined;
}

function procs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
      let cwd: string | undefined;
      try {
        cwd = fs.readlinkSync(`/proc/${entry}/cwd`);
      } catch {
        cwd = undefined;
      }
      out.push({ pid: Number(entry), argv, cwd });
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * The end of a shim e2e file: once every shim of ours has exited, no mount, shim socket or
 * runtime state entry of the instance is left.
 */
export async function expectNoShimLeftovers(ctd: PrivateContainerd): Promise<void> {
  await waitFor('all shims to exit', () => outriggerShims(ctd).length === 0 || undefined);
  const left = ctd.leftovers();
  expect(left.mounts).toEqual([]);
  expect(left.sockets).toEqual([]);
  expect(left.runtimeEntries).toEqual([]);
}

/** Our shim daemons serving this containerd (argv names the instance's address). */
export function outriggerShims(ctd: PrivateContainerd): ProcInfo[] {
  return procs().filter((p) => p.argv[0]?.endsWith('containerd-shim-outrigger-v2') && p.argv.includes(ctd.address));
}

export function shimFor(ctd: PrivateContainerd, id: string): ProcInfo | undefined {
  return outriggerShims(ctd).find((p) => p.argv.includes(id));
}

/** Zombie children of `pid` (state Z in /proc/<child>/stat). */
export function zombieChildren(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' && Number(fields[1]) === pid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** STATUS column of `ctr tasks ls` for `id` (undefined when the task is not listed). */
export async function taskStatus(ctd: PrivateContainerd, id: string): Promise<string | undefined> {
  const r = await ctd.ctr(['tasks', 'ls'], { check: true });
  for (const line of r.stdout.split('\n').slice(1)) {
    const [task, , status] = line.trim().split(/\s+/);
    if (task === id) return status;
  }
  return undefined;
}

export async function containerIds(ctd: PrivateContainerd): Promise<string[]> {
  const r = await ctd.ctr(['containers', 'ls', '-q'], { check: true });
  return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
}

/**
 * Shim processes of a containerd namespace, ours or another runtime's, whatever their mode
 * (start, daemon, delete): containerd hands every shim `-namespace <ns>` with a single dash,
 * which neither ctr (`--namespace`) nor containerd itself takes.
 */
export function shimProcessesOfNamespace(namespace: string): ProcInfo[] {
  return procs().filter((p) => p.argv.some((a, i) => a === '-namespace' && p.argv[i + 1] === namespace));
}

/** FIFOs anywhere below `dirs` (by file type, so no naming convention can hide one). */
export function fifosBelow(...dirs: string[]): string[] {
  const out: string[] = [];
  for (const dir of dirs) {
    if (!fs.existsSync(dir)) continue;
    for (const rel of fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
      const file = path.join(dir, rel);
      try {
        if (fs.lstatSync(file).isFIFO()) out.push(file);
      } catch {
        // removed while we looked
      }
    }
  }
  return out.sort();
}

/**
 * The shim a scenario runs under and the `ctr run` flags that pick its OCI runtime: e.g.
 * `--runtime-config-path` with a BinaryName for ours, `--runc-binary` for io.containerd.runc.v2.
 * A bare runtime name means the default OCI runtime (runc).
 */
export type RuntimeChoice = string | { readonly runtime: string; readonly flags?: readonly string[] };

/** The shim's runtime name and the flags that pick its OCI runtime (none for a bare name). */
export function resolveChoice(choice: RuntimeChoice): { runtime: string; flags: string[] } {
  return typeof choice === 'string' ? { runtime: choice, flags: [] } : { runtime: choice.runtime, flags: [...(choice.flags ?? [])] };
}

/** Runs `sleep 1000` (or `args`) detached under `choice`; returns the container id. */
export async function startDetached(
  c: PrivateContainerd,
  image: string,
  choice: RuntimeChoice,
  prefix: string,
  opts: { flags?: readonly string[]; args?: readonly string[] } = {},
): Promise<string> {
  const id = uniqueId(prefix);
  const { runtime, flags } = resolveChoice(choice);
  const r = await c.run({ image, id, runtime, detach: true, flags: [...flags, ...(opts.flags ?? [])], args: [...(opts.args ?? ['sleep', '1000'])] });
  if (r.exitCode !== 0) throw new Error(`${r.command} failed (exit ${r.exitCode}): ${r.stderr}`);
  return id;
}

/** SIGKILL, wait for STOPPED, delete the task, remove the container. */
export async function removeTask(c: PrivateContainerd, id: string): Promise<void> {
  await c.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
  await waitFor('the task to stop', async () => ((await taskStatus(c, id)) === 'STOPPED' ? true : undefined));
  await c.ctr(['tasks', 'delete', id], { check: true });
  await c.ctr(['containers', 'rm', id], { check: true });
}

/** One value file of a task's cgroup v1 controller (ctr puts tasks at /<namespace>/<id>). */
export function cgroupValue(c: PrivateContainerd, controller: string, id: string, file: string): string {
  return fs.readFileSync(`/sys/fs/cgroup/${controller}/${c.namespace}/${id}/${file}`, 'utf8').trim();
}

/** STATUS of every task `ctr tasks ls` lists, by task id (one ctr call for many tasks). */
export async function taskStatuses(ctd: PrivateContainerd): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const line of (await ctd.ctr(['tasks', 'ls'], { check: true })).stdout.split('\n').slice(1)) {
    const [task, , status] = line.trim().split(/\s+/);
    if (task && status) out.set(task, status);
  }
  return out;
}
