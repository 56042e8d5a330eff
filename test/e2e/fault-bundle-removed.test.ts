/**
 * The bundle directory removed under a running containerd-shim-outrigger-v2 (an operator's
 * `rm -rf` in /run/containerd, a tmpfs cleaner): the container keeps running, and kill, delete
 * and container removal still work; the shim goes away and nothing is left. runc needs only
 * its state dir and absolute paths for these verbs. (The stock io.containerd.runc.v2 fails
 * here: its runc calls log to <bundle>/log.json, so kill and delete --force both fail and the
 * container can only be removed by hand; outrigger is held to recovering.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { pidAlive, uniqueId, useContainerd } from './harness.ts';
import { OUTRIGGER, outriggerShims, pinnedShimBinDir, shimFor, taskStatus, useTestImage, waitFor } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });

function taskPid(stdout: string, id: string): number {
  return Number(stdout.split('\n').find((l) => l.startsWith(id))?.trim().split(/\s+/)[1]);
}

describe('bundle removed', () => {
  it('bundle dir removed under a running shim: kill, delete and removal still work', async () => {
    await ctd().importImage(image().file);
    const id = uniqueId('nobundle');
    await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, args: ['sleep', '1000'] });
    const shim = shimFor(ctd(), id)!;
    const bundle = shim.cwd!;
    const pid = taskPid((await ctd().ctr(['tasks', 'ls'], { check: true })).stdout, id);
    // Detach the rootfs first: rm -rf through a live overlay would empty the container instead.
    await execa('umount', ['--lazy', path.join(bundle, 'rootfs')]);
    fs.rmSync(bundle, { recursive: true, force: true });
    expect(fs.existsSync(bundle)).toBe(false);

    expect(await taskStatus(ctd(), id)).toBe('RUNNING');
    await ctd().ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
    await waitFor('the task to stop', async () => ((await taskStatus(ctd(), id)) === 'STOPPED' ? true : undefined));
    expect(pidAlive(pid)).toBe(false);
    const del = await ctd().ctr(['tasks', 'delete', id], { timeoutMs: 60_000 });
    expect(del.exitCode, del.stderr).toBe(0);
    await ctd().ctr(['containers', 'rm', id], { check: true });
    await waitFor('the shim to exit', () => (shimFor(ctd(), id) === undefined ? true : undefined), 30_000);
    expect(outriggerShims(ctd()).filter((p) => p.pid === shim.pid)).toEqual([]);
    const left = ctd().leftovers();
    expect(left.mounts).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
  });
});
