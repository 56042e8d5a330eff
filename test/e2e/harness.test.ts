/**
 * The private-containerd harness with real containerd 1.6 and the stock runc shim: salted test
 * images of every layer media type import and run, and teardown leaves nothing on the host, also
 * after a leaked running task, a SIGKILLed shim, and a SIGKILLed containerd. Leftovers are checked
 * both through the harness's own leftovers() and by an independent look at /proc, mountinfo,
 * /run/containerd and the cgroup tree, so a blind spot in one does not hide a leak.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltImage, buildTestImages } from '../../scripts/test-images.ts';
import { type PrivateContainerd, shimSocketPath, startContainerd, uniqueId, useContainerd } from './harness.ts';

const salt = `harness-${process.pid}-${randomBytes(6).toString('hex')}`;
const imageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-images-'));
let images: BuiltImage[] = [];

beforeAll(async () => {
  images = await buildTestImages({ outDir: imageDir, salt });
});
afterAll(() => fs.rmSync(imageDir, { recursive: true, force: true }));

function image(kind: string): BuiltImage {
  const found = images.find((i) => i.name.endsWith(`busybox-${kind}:latest`));
  if (!found) throw new Error(`no ${kind} test image was built`);
  return found;
}

const EMPTY = { processes: [], mounts: [], sockets: [], runtimeEntries: [], cgroups: [], files: [] };

/** Looks for traces of an instance without the harness's bookkeeping. */
function independentTraces(ctd: PrivateContainerd, ids: readonly string[]): string[] {
  const traces: string[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    if (cmdline.includes(ctd.dir) || ids.some((id) => cmdline.includes(id))) traces.push(`process ${entry}: ${cmdline}`);
  }
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (line.includes(ctd.dir)) traces.push(`mount: ${line}`);
  }
  for (const id of ids) {
    const socket = shimSocketPath(ctd.address, ctd.namespace, id);
    if (fs.existsSync(socket)) traces.push(`shim socket of ${id}: ${socket}`);
  }
  const fifoBase = '/run/containerd/fifo';
  for (const dir of fs.existsSync(fifoBase) ? fs.readdirSync(fifoBase) : []) {
    for (const fifo of fs.readdirSync(path.join(fifoBase, dir))) {
      if (ids.some((id) => fifo.startsWith(`${id}-`))) traces.push(`fifo ${fifoBase}/${dir}/${fifo}`);
    }
  }
  const runcRoot = path.join('/run/containerd/runc', ctd.namespace);
  if (fs.existsSync(runcRoot)) traces.push(`runc root ${runcRoot}: ${fs.readdirSync(runcRoot).join(', ')}`);
  for (const controller of fs.readdirSync('/sys/fs/cgroup')) {
    const dir = path.join('/sys/fs/cgroup', controller, ctd.namespace);
    if (fs.existsSync(dir)) traces.push(`cgroup ${dir}`);
  }
  if (fs.existsSync(ctd.dir)) traces.push(`dir ${ctd.dir}`);
  return traces;
}

/** The pid of the runc shim serving task `id`, found from /proc rather than from the harness. */
function shimPid(ctd: PrivateContainerd, id: string): number {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (argv[0]?.endsWith('containerd-shim-runc-v2') && argv.includes(id) && argv.includes(ctd.address)) return Number(entry);
  }
  throw new Error(`no shim process for task ${id}`);
}

async function waitFor(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function importAll(ctd: PrivateContainerd, kinds: readonly string[]): Promise<void> {
  for (const kind of kinds) await ctd.importImage(image(kind).file);
}

describe('stock runc shim in a private containerd, one image per layer media type', () => {
  const ctd = useContainerd();

  beforeAll(async () => {
    await importAll(ctd(), ['tar', 'gzip', 'zstd']);
  });

  it('imports every image under its fully qualified name with its layer blob', async () => {
    const refs = (await ctd().ctr(['images', 'ls', '-q'], { check: true })).stdout.split('\n').filter(Boolean);
    expect(refs.sort()).toEqual(images.map((i) => i.name).sort());
    const content = (await ctd().ctr(['content', 'ls', '-q'], { check: true })).stdout;
    for (const i of images) expect(content, i.name).toContain(i.layerDigest);
  });

  it.each(['tar', 'gzip', 'zstd'])('runs sh from the %s image and reports its output and exit status', async (kind) => {
    const img = image(kind);
    const r = await ctd().run({
      image: img.name,
      args: ['sh', '-c', 'echo hello; cat /etc/outrigger-salt; echo; cat /etc/outrigger-image; echo oops >&2; exit 3'],
    });
    expect(r.stderr).toBe('oops\n');
    expect(r.stdout).toBe(`hello\n${salt}\n${img.name}\n`);
    expect(r.exitCode).toBe(3);
    // --rm removed the container again
    const containers = await ctd().ctr(['containers', 'ls', '-q'], { check: true });
    expect(containers.stdout).not.toContain(r.id);
  });

  it('gives the container the busybox applets the tests use', async () => {
    const r = await ctd().run({ image: image('gzip').name, args: ['sh', '-c', 'ls /bin | wc -l; seq 3 | head -n 2; id -u'] });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('19\n1\n2\n0\n');
  });
});

describe('teardown', () => {
  it('leaves no process, mount, socket, runc state or cgroup after normal use', async () => {
    const ctd = await startContainerd();
    await importAll(ctd, ['zstd']);
    const run = await ctd.run({ image: image('zstd').name, args: ['true'] });
    expect(run.exitCode).toBe(0);
    const before = ctd.leftovers();
    expect(before.processes.map((p) => p.pid)).toContain(ctd.pid);
    expect(before.files).toEqual([ctd.dir]);

    await ctd.stop();
    expect(ctd.leftovers()).toEqual(EMPTY);
    expect(independentTraces(ctd, [run.id])).toEqual([]);
  });

  it('removes a leaked running task and one whose shim was SIGKILLed', async () => {
    const ctd = await startContainerd();
    await importAll(ctd, ['gzip']);
    const leaked = await ctd.run({ image: image('gzip').name, detach: true, args: ['sleep', '100000'] });
    const orphaned = await ctd.run({ image: image('gzip').name, detach: true, args: ['sleep', '100000'] });
    expect([leaked.exitCode, orphaned.exitCode]).toEqual([0, 0]);

    const orphanSocket = shimSocketPath(ctd.address, ctd.namespace, orphaned.id);
    process.kill(shimPid(ctd, orphaned.id), 'SIGKILL');
    // containerd notices the dead shim and cleans its bundle, but the shim's socket stays behind.
    await waitFor('containerd to drop the dead task', () =>
      !fs.existsSync(path.join(ctd.paths.state, 'io.containerd.runtime.v2.task', ctd.namespace, orphaned.id, 'address')),
    );
    expect(fs.existsSync(orphanSocket)).toBe(true);
    expect(independentTraces(ctd, [leaked.id, orphaned.id]).length).toBeGreaterThan(0);

    await ctd.stop();
    expect(ctd.leftovers()).toEqual(EMPTY);
    expect(independentTraces(ctd, [leaked.id, orphaned.id])).toEqual([]);
  });

  it('cleans up after containerd itself was SIGKILLed with tasks running and a shim killed', async () => {
    const ctd = await startContainerd();
    await importAll(ctd, ['tar']);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await ctd.run({ image: image('tar').name, id: uniqueId('crash'), detach: true, args: ['sleep', '100000'] });
      expect(r.exitCode).toBe(0);
      ids.push(r.id);
    }
    process.kill(ctd.pid!, 'SIGKILL');
    await waitFor('containerd to exit', () => !ctd.running);
    process.kill(shimPid(ctd, ids[0]!), 'SIGKILL');

    // Nobody is left to clean up: rootfs mounts and runc state of both tasks stay behind.
    const before = ctd.leftovers();
    expect(before.mounts).toHaveLength(2);
    expect(before.runtimeEntries.map((e) => e.id).sort()).toEqual([...ids].sort());
    expect(before.processes.length).toBeGreaterThanOrEqual(3); // one shim, two sleeps

    await ctd.stop();
    expect(ctd.leftovers()).toEqual(EMPTY);
    expect(independentTraces(ctd, ids)).toEqual([]);
  });
});
