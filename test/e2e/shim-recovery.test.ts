/**
 * Recovery paths of containerd-shim-outrigger-v2: containerd killed and restarted while tasks
 * run (the shim keeps them and serves the new containerd: listed, exec, kill, delete), and the
 * shim killed with SIGKILL (containerd notices, runs our `delete`, the task goes away, the
 * container is stopped and nothing stays mounted).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pidAlive, shimSocketPath, startContainerd, uniqueId } from './harness.ts';
import { containerIds, OUTRIGGER, outriggerShims, shimFor, taskStatus, useTestImage, pinnedShimBinDir, waitFor } from './shim-support.ts';

const image = useTestImage();
const binDir = pinnedShimBinDir();


describe('recovery', () => {
  it('containerd killed and restarted: the task is still listed, and exec, kill and delete work', async () => {
    const ctd = await startContainerd({ binDirs: [binDir] });
    await ctd.importImage(image().file);
    const id = uniqueId('rst');
    await ctd.run({ image: image().name, id, runtime: OUTRIGGER, detach: true, args: ['sleep', '1000'] });
    await ctd.ctr(['tasks', 'exec', '-d', '--exec-id', 'before', id, 'sleep', '1000'], { check: true });
    const shim = shimFor(ctd, id);
    expect(shim).toBeDefined();
    const pid = Number((await ctd.ctr(['tasks', 'ls'], { check: true })).stdout.split('\n').find((l) => l.startsWith(id))?.trim().split(/\s+/)[1]);

    await ctd.restart('SIGKILL');

    expect(await taskStatus(ctd, id)).toBe('RUNNING');
    expect(shimFor(ctd, id)?.pid).toBe(shim!.pid);
    expect(pidAlive(pid)).toBe(true);
    const exec = await ctd.ctr(['tasks', 'exec', '--exec-id', 'after', id, 'sh', '-c', 'echo after restart; exit 4']);
    expect(exec.stdout).toBe('after restart\n');
    expect(exec.exitCode).toBe(4);
    const ps = await ctd.ctr(['tasks', 'ps', id], { check: true });
    expect(ps.stdout).toContain('ExecID:before');

    await ctd.ctr(['tasks', 'kill', '--all', '--signal', 'SIGKILL', id], { check: true });
    await waitFor('the task to stop', async () => ((await taskStatus(ctd, id)) === 'STOPPED' ? true : undefined));
    const del = await ctd.ctr(['tasks', 'delete', id]);
    expect(del.exitCode).toBe(0);
    expect(del.stderr).toMatch(/exit code 137/);
    await ctd.ctr(['containers', 'rm', id], { check: true });
    await waitFor('the shim to exit', () => (shimFor(ctd, id) === undefined ? true : undefined));
    expect(pidAlive(pid)).toBe(false);
  });

  it('shim killed with SIGKILL: containerd sees the exit, delete cleans up, the container can be removed', async () => {
    const ctd = await startContainerd({ binDirs: [binDir] });
    await ctd.importImage(image().file);
    const id = uniqueId('k9shim');
    const started = await ctd.run({ image: image().name, id, runtime: OUTRIGGER, detach: true, args: ['sleep', '1000'] });
    expect(started.exitCode, started.stderr).toBe(0);
    const shim = shimFor(ctd, id);
    expect(shim, `shims: ${JSON.stringify(outriggerShims(ctd))}`).toBeDefined();
    const bundle = shim!.cwd!;
    expect(bundle).toContain(ctd.dir);
    const pid = Number((await ctd.ctr(['tasks', 'ls'], { check: true })).stdout.split('\n').find((l) => l.startsWith(id))?.trim().split(/\s+/)[1]);
    expect(pidAlive(pid)).toBe(true);

    process.kill(shim!.pid, 'SIGKILL');

    await waitFor('containerd to drop the task', async () => ((await taskStatus(ctd, id)) === undefined ? true : undefined));
    await waitFor('the container process to be killed', () => (pidAlive(pid) ? undefined : true));
    // containerd drops the task when the connection closes and runs our `delete` concurrently.
    await waitFor('the rootfs to be unmounted', () => (fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(path.join(bundle, 'rootfs')) ? undefined : true));
    const left = ctd.leftovers();
    expect(left.mounts).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
    const log = fs.readFileSync(ctd.logFile, 'utf8');
    expect(log).toMatch(new RegExp(`cleaning up dead shim`));
    await ctd.ctr(['containers', 'rm', id], { check: true });
    expect(await containerIds(ctd)).not.toContain(id);

    // The dead shim's socket is still there; a new task of the same group replaces it.
    const socket = shimSocketPath(ctd.address, ctd.namespace, id);
    expect(fs.existsSync(socket)).toBe(true);
    const again = await ctd.run({ image: image().name, id, runtime: OUTRIGGER, args: ['sh', '-c', 'echo again; exit 3'] });
    expect(again.stdout).toBe('again\n');
    expect(again.exitCode).toBe(3);
    await waitFor('the new shim to exit and take its socket along', () => (shimFor(ctd, id) === undefined && !fs.existsSync(socket) ? true : undefined));
  });
});
