/**
 * Grouping: containers carrying the same io.kubernetes.cri.sandbox-id share one shim process
 * (one socket, every RPC dispatched on the request's id); deleting the first container, whose
 * bundle is the shim's cwd, leaves the shim serving the second; the shim leaves with the last.
 * Five containers of one sandbox started at once end in one shim; a container of the sandbox
 * that starts while the sandbox's last task is being deleted is served (its `start` joined the
 * shim, which therefore waits for its Create instead of leaving), by that shim or a new one.
 */
import { describe, expect, it } from 'vitest';
import { shimSocketPath, uniqueId, useContainerd } from './harness.ts';
import { OUTRIGGER, outriggerShims, taskStatus, useTestImage, pinnedShimBinDir, waitFor } from './shim-support.ts';
import fs from 'node:fs';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });

describe('one shim per CRI sandbox group', () => {
  it('two containers of one sandbox share the shim, which outlives the first and leaves with the last', async () => {
    await ctd().importImage(image().file);
    const pod = uniqueId('pod');
    const a = uniqueId('ga');
    const b = uniqueId('gb');
    const annotation = ['--annotation', `io.kubernetes.cri.sandbox-id=${pod}`];
    await ctd().run({ image: image().name, id: a, runtime: OUTRIGGER, detach: true, flags: annotation, args: ['sleep', '1000'] });
    await ctd().run({ image: image().name, id: b, runtime: OUTRIGGER, detach: true, flags: annotation, args: ['sleep', '1000'] });
    const shims = outriggerShims(ctd());
    expect(shims).toHaveLength(1);
    expect(shims[0]!.argv).toContain(a);
    expect(fs.existsSync(shimSocketPath(ctd().address, ctd().namespace, pod))).toBe(true);
    expect(await taskStatus(ctd(), a)).toBe('RUNNING');
    expect(await taskStatus(ctd(), b)).toBe('RUNNING');

    // exec and kill dispatch on the request's id, not the shim's -id
    const exec = await ctd().ctr(['tasks', 'exec', '--exec-id', 'e', b, 'sh', '-c', 'echo in-b; exit 6']);
    expect(exec.stdout).toBe('in-b\n');
    expect(exec.exitCode).toBe(6);

    await ctd().ctr(['tasks', 'kill', '--signal', 'SIGKILL', a], { check: true });
    await waitFor('a to stop', async () => ((await taskStatus(ctd(), a)) === 'STOPPED' ? true : undefined));
    expect(await taskStatus(ctd(), b)).toBe('RUNNING');
    await ctd().ctr(['tasks', 'delete', a], { check: true });
    await ctd().ctr(['containers', 'rm', a], { check: true });
    // containerd ran our `delete` for a and removed its bundle; the shared shim serves b on
    expect(outriggerShims(ctd()).map((s) => s.pid)).toEqual([shims[0]!.pid]);
    const again = await ctd().ctr(['tasks', 'exec', '--exec-id', 'e2', b, 'sh', '-c', 'exit 9']);
    expect(again.exitCode).toBe(9);

    await ctd().ctr(['tasks', 'kill', '--signal', 'SIGKILL', b], { check: true });
    await waitFor('b to stop', async () => ((await taskStatus(ctd(), b)) === 'STOPPED' ? true : undefined));
    await ctd().ctr(['tasks', 'delete', b], { check: true });
    await ctd().ctr(['containers', 'rm', b], { check: true });
    await waitFor('the shared shim to exit', () => (outriggerShims(ctd()).length === 0 ? true : undefined));
    expect(fs.existsSync(shimSocketPath(ctd().address, ctd().namespace, pod))).toBe(false);
  });

  it('five containers of one sandbox started at once share one shim; a start racing the last delete is served', async () => {
    const pod = uniqueId('pod5');
    const annotation = ['--annotation', `io.kubernetes.cri.sandbox-id=${pod}`];
    const ids = Array.from({ length: 5 }, () => uniqueId('p5'));
    const runs = await Promise.all(ids.map((id) => ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, flags: annotation, args: ['sleep', '1000'] })));
    for (const r of runs) expect({ id: r.id, code: r.exitCode, stderr: r.stderr }).toEqual({ id: r.id, code: 0, stderr: '' });
    const shims = outriggerShims(ctd());
    expect(shims).toHaveLength(1);
    for (const id of ids) expect(await taskStatus(ctd(), id)).toBe('RUNNING');

    const remove = async (id: string) => {
      await ctd().ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
      await waitFor(`${id} to stop`, async () => ((await taskStatus(ctd(), id)) === 'STOPPED' ? true : undefined));
      await ctd().ctr(['tasks', 'delete', id], { check: true });
      await ctd().ctr(['containers', 'rm', id], { check: true });
    };
    // Delete all five while a sixth of the same sandbox starts: its run must succeed.
    const [late] = await Promise.all([
      ctd().run({ image: image().name, runtime: OUTRIGGER, flags: annotation, args: ['sh', '-c', 'echo late; exit 8'] }),
      ...ids.map(remove),
    ]);
    expect({ out: late.stdout, code: late.exitCode, err: late.stderr }).toEqual({ out: 'late\n', code: 8, err: '' });
    await waitFor('the sandbox shim to leave', () => (outriggerShims(ctd()).length === 0 ? true : undefined));
    expect(fs.existsSync(shimSocketPath(ctd().address, ctd().namespace, pod))).toBe(false);
  });
});
