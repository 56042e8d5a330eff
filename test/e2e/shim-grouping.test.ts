/**
 * Grouping: containers carrying the same io.kubernetes.cri.sandbox-id share one shim process
 * (one socket, every RPC dispatched on the request's id); deleting the first container, whose
 * bundle is the shim's cwd, leaves the shim serving the second; the shim leaves with the last.
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
});
