/**
 * ShimGrouping = "node" (runtime options TOML, through `ctr --runtime-config-path`): one shim
 * process serves every container of the containerd namespace. 20 `ctr run -d` started at once
 * end with one daemon; the daemon outlives every task but the last and leaves with it, taking
 * its socket along; a container without the option keeps a shim of its own. A SIGKILLed node
 * shim takes every container of the namespace with it (containerd cleans up each task and runs
 * our `delete`, which kills the container) and leaves a stale socket that the next `start`
 * replaces. After a containerd restart the one shim still serves every task (each bundle's
 * `address` names the node socket). A bad grouping value fails `start` with a message naming the key.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { pidAlive, type PrivateContainerd, shimSocketPath, uniqueId, useContainerd } from './harness.ts';
import { containerIds, OUTRIGGER, outriggerShims, pinnedShimBinDir, taskStatus, useTestImage, waitFor } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });
const configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shim-node-grouping-'));
afterAll(() => fs.rmSync(configDir, { recursive: true, force: true }));

function optionsFile(name: string, body: string): string {
  const file = path.join(configDir, name);
  fs.writeFileSync(file, body);
  return file;
}

const NODE_GROUP = '@node';

function nodeSocket(c: PrivateContainerd): string {
  return shimSocketPath(c.address, c.namespace, NODE_GROUP);
}

async function taskPids(c: PrivateContainerd): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await c.ctr(['tasks', 'ls'], { check: true })).stdout.split('\n').slice(1)) {
    const [id, pid] = line.trim().split(/\s+/);
    if (id && pid) out.set(id, Number(pid));
  }
  return out;
}

async function killAndRemove(c: PrivateContainerd, id: string): Promise<void> {
  await c.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
  await waitFor(`${id} to stop`, async () => ((await taskStatus(c, id)) === 'STOPPED' ? true : undefined));
  await c.ctr(['tasks', 'delete', id], { check: true });
  await c.ctr(['containers', 'rm', id], { check: true });
}

describe('ShimGrouping = "node": one shim per namespace', () => {
  it('20 concurrent starts share one daemon, which serves every task, outlives all but the last and leaves with it', async () => {
    await ctd().importImage(image().file);
    const config = optionsFile('node.toml', '# one shim for the namespace\nShimGrouping = "node"\n');
    const flags = ['--runtime-config-path', config];
    const ids = Array.from({ length: 20 }, () => uniqueId('node'));
    const runs = await Promise.all(
      ids.map((id) => ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, flags, args: ['sleep', '1000'], timeoutMs: 120_000 })),
    );
    for (const r of runs) expect({ id: r.id, exitCode: r.exitCode, stderr: r.stderr }).toEqual({ id: r.id, exitCode: 0, stderr: '' });
    const shims = outriggerShims(ctd());
    expect(shims.map((s) => s.argv.join(' '))).toHaveLength(1);
    const shim = shims[0]!;
    expect(fs.existsSync(nodeSocket(ctd()))).toBe(true);
    const pids = await taskPids(ctd());
    for (const id of ids) expect({ id, status: await taskStatus(ctd(), id) }).toEqual({ id, status: 'RUNNING' });
    // Every bundle names the one socket, so a restarted containerd finds the same shim.
    const addresses = new Set(ids.map((id) => fs.readFileSync(path.join(ctd().dir, 'state/io.containerd.runtime.v2.task', ctd().namespace, id, 'address'), 'utf8')));
    expect([...addresses]).toEqual([`unix://${nodeSocket(ctd())}`]);

    // The daemon trims its memory after 2 s without a create or delete (daemon-memory.ts): the
    // rest of the test runs against a trimmed shim.
    await sleep(3_000);
    // Requests dispatch on their id.
    const exec = await ctd().ctr(['tasks', 'exec', '--exec-id', 'e', ids[7]!, 'sh', '-c', 'echo in-seven; exit 6']);
    expect({ out: exec.stdout, code: exec.exitCode }).toEqual({ out: 'in-seven\n', code: 6 });

    // A task without the option keeps its own shim; an attached node-mode run joins the daemon.
    const own = await ctd().run({ image: image().name, runtime: OUTRIGGER, args: ['sh', '-c', 'exit 5'] });
    expect(own.exitCode).toBe(5);
    const joined = await ctd().run({ image: image().name, runtime: OUTRIGGER, flags, args: ['sh', '-c', 'echo joined; exit 3'] });
    expect({ out: joined.stdout, code: joined.exitCode }).toEqual({ out: 'joined\n', code: 3 });
    await waitFor('the pod-mode shim to leave', () => (outriggerShims(ctd()).length === 1 ? true : undefined));
    expect(outriggerShims(ctd()).map((s) => s.pid)).toEqual([shim.pid]);

    // Remove all but the last, at once: each Shutdown finds tasks left, the daemon stays.
    const [last, ...rest] = ids as [string, ...string[]];
    await Promise.all(rest.map((id) => killAndRemove(ctd(), id)));
    for (const id of rest) expect({ id, alive: pidAlive(pids.get(id)!) }).toEqual({ id, alive: false });
    expect(outriggerShims(ctd()).map((s) => s.pid)).toEqual([shim.pid]);
    expect(await taskStatus(ctd(), last)).toBe('RUNNING');
    const again = await ctd().ctr(['tasks', 'exec', '--exec-id', 'e2', last, 'sh', '-c', 'exit 9']);
    expect(again.exitCode).toBe(9);

    await killAndRemove(ctd(), last);
    await waitFor('the node shim to leave with its last task', () => (outriggerShims(ctd()).length === 0 ? true : undefined));
    expect(pidAlive(shim.pid)).toBe(false);
    expect(fs.existsSync(nodeSocket(ctd()))).toBe(false);
    expect(fs.existsSync(`${nodeSocket(ctd())}.lock`)).toBe(false);
    const left = ctd().leftovers();
    expect(left.mounts).toEqual([]);
    expect(left.sockets).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
    // Only containerd itself is still running.
    expect(left.processes.filter((p) => !/^\S*\/containerd --config /.test(p.cmdline))).toEqual([]);
  });

  it('SIGKILL of the node shim: containerd cleans up every task of the namespace and the containers die; the next start replaces the stale socket', async () => {
    const config = optionsFile('node-k9.toml', 'shim_grouping = "node"\nBinaryName = "runc"\n');
    const flags = ['--runtime-config-path', config];
    const events = spawn('/usr/bin/ctr', ['--address', ctd().address, '--namespace', ctd().namespace, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let eventText = '';
    events.stdout.setEncoding('utf8').on('data', (d: string) => (eventText += d));
    try {
      const ids = Array.from({ length: 5 }, () => uniqueId('k9node'));
      for (const id of ids) {
        const r = await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, flags, args: ['sleep', '1000'] });
        expect(r.exitCode, r.stderr).toBe(0);
      }
      const [shim, ...others] = outriggerShims(ctd());
      expect(others).toEqual([]);
      const pids = await taskPids(ctd());
      for (const id of ids) expect(pidAlive(pids.get(id)!)).toBe(true);

      process.kill(shim!.pid, 'SIGKILL');

      await waitFor('containerd to drop every task', async () => ((await taskPids(ctd())).size === 0 ? true : undefined));
      await waitFor('every container process to die', () => (ids.every((id) => !pidAlive(pids.get(id)!)) ? true : undefined));
      // containerd published an exit (137, from our `delete`) for each task itself.
      await waitFor('an exit event per task', () =>
        ids.every((id) => eventText.split('\n').some((l) => l.includes('/tasks/exit') && l.includes(`"container_id":"${id}"`) && l.includes('"exit_status":137')))
          ? true
          : undefined,
      );
      const log = fs.readFileSync(ctd().logFile, 'utf8');
      expect((log.match(/cleaning up dead shim/g) ?? []).length).toBeGreaterThanOrEqual(ids.length);
      // The containers (not the tasks) remain, as after any shim crash.
      const listed = await containerIds(ctd());
      for (const id of ids) expect(listed).toContain(id);
      for (const id of ids) await ctd().ctr(['containers', 'rm', id], { check: true });
      const left = ctd().leftovers();
      expect(left.mounts).toEqual([]);
      expect(left.runtimeEntries).toEqual([]);

      // SIGKILL left the socket file; the next node-mode start removes it and serves.
      expect(fs.existsSync(nodeSocket(ctd()))).toBe(true);
      const next = await ctd().run({ image: image().name, runtime: OUTRIGGER, flags, args: ['sh', '-c', 'echo after; exit 4'] });
      expect({ out: next.stdout, code: next.exitCode }).toEqual({ out: 'after\n', code: 4 });
      await waitFor('the new node shim to leave', () => (outriggerShims(ctd()).length === 0 && !fs.existsSync(nodeSocket(ctd())) ? true : undefined));
    } finally {
      events.kill('SIGKILL');
    }
  });

  it('containerd killed and restarted: the node shim keeps every task, and exec, kill and delete work through it', async () => {
    const config = optionsFile('node-restart.toml', 'ShimGrouping = "node"\n');
    const flags = ['--runtime-config-path', config];
    const ids = Array.from({ length: 3 }, () => uniqueId('rsnode'));
    for (const id of ids) {
      const r = await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, flags, args: ['sleep', '1000'] });
      expect(r.exitCode, r.stderr).toBe(0);
    }
    const [shim, ...others] = outriggerShims(ctd());
    expect(others).toEqual([]);

    await ctd().restart('SIGKILL');

    for (const id of ids) expect({ id, status: await taskStatus(ctd(), id) }).toEqual({ id, status: 'RUNNING' });
    expect(outriggerShims(ctd()).map((s) => s.pid)).toEqual([shim!.pid]);
    for (const [i, id] of ids.entries()) {
      const exec = await ctd().ctr(['tasks', 'exec', '--exec-id', `after-${i}`, id, 'sh', '-c', `exit ${20 + i}`]);
      expect({ id, code: exec.exitCode }).toEqual({ id, code: 20 + i });
    }
    await Promise.all(ids.map((id) => killAndRemove(ctd(), id)));
    await waitFor('the node shim to leave', () => (outriggerShims(ctd()).length === 0 && !fs.existsSync(nodeSocket(ctd())) ? true : undefined));
  });

  it('an unknown ShimGrouping value fails start with a message naming the key', async () => {
    const config = optionsFile('bad.toml', 'ShimGrouping = "cluster"\n');
    const id = uniqueId('badgroup');
    const r = await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, flags: ['--runtime-config-path', config], args: ['true'] });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/ShimGrouping must be one of "pod", "node", not "cluster"/);
    expect(outriggerShims(ctd())).toEqual([]);
    if ((await containerIds(ctd())).includes(id)) await ctd().ctr(['containers', 'rm', id], { check: true });
  });
});
