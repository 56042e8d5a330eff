/**
 * containerd-shim-outrigger-v2 through a private containerd 1.6 with real runc: everything a ctr
 * user does with a task behaves as under io.containerd.runc.v2, and nothing is left behind
 * (the harness's teardown fails the file if a process, mount, socket, runc entry or cgroup of
 * the instance survives).
 */
import { describe, expect, it } from 'vitest';
import { useContainerd, uniqueId } from './harness.ts';
import { containerIds, OUTRIGGER, expectNoShimLeftovers, shimFor, taskStatus, useTestImage, pinnedShimBinDir, waitFor, zombieChildren } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });

describe('containerd-shim-outrigger-v2 lifecycle under ctr', () => {
  it('imports the test image', async () => {
    await ctd().importImage(image().file);
  });

  it('ctr run --rm: output on stdout and stderr, exit code 7, container and shim gone afterwards', async () => {
    const r = await ctd().run({ image: image().name, runtime: OUTRIGGER, args: ['sh', '-c', 'echo hi; echo err >&2; exit 7'] });
    expect(r.stdout).toBe('hi\n');
    expect(r.stderr).toBe('err\n');
    expect(r.exitCode).toBe(7);
    expect(await containerIds(ctd())).not.toContain(r.id);
    await waitFor('the shim to exit', () => shimFor(ctd(), r.id) === undefined || undefined);
  });

  it('ctr run --rm: exit code 0', async () => {
    const r = await ctd().run({ image: image().name, runtime: OUTRIGGER, args: ['true'] });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it('ctr run --rm attached, killed with SIGKILL from ctr t kill: exit code 137', async () => {
    const id = uniqueId('k9');
    const running = ctd().run({ image: image().name, id, runtime: OUTRIGGER, args: ['sleep', '1000'] });
    await waitFor('the task to run', async () => ((await taskStatus(ctd(), id)) === 'RUNNING' ? true : undefined));
    const kill = await ctd().ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
    expect(kill.exitCode, kill.stderr).toBe(0);
    const r = await running;
    expect(r.exitCode).toBe(137);
    expect(await containerIds(ctd())).not.toContain(id);
  });

  it('stdin piped through: echo | ctr run … cat', async () => {
    const r = await ctd().run({ image: image().name, runtime: OUTRIGGER, args: ['cat'], input: 'hi\nthere\n' });
    expect(r.stdout).toBe('hi\nthere\n');
    expect(r.exitCode).toBe(0);
  });

  it('ctr run -d, then exec attached and detached, ps, kill of an exec, kill -a, delete, c rm', async () => {
    const id = uniqueId('det');
    const run = await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, args: ['sleep', '1000'] });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(await taskStatus(ctd(), id)).toBe('RUNNING');
    const shim = shimFor(ctd(), id);
    expect(shim, 'our shim serves the task').toBeDefined();

    const exec = await ctd().ctr(['tasks', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo from-exec; echo exec-err >&2; exit 3']);
    expect(exec.stdout).toBe('from-exec\n');
    expect(exec.stderr).toBe('exec-err\n');
    expect(exec.exitCode).toBe(3);

    const piped = await ctd().ctr(['tasks', 'exec', '--exec-id', 'e-in', id, 'cat'], { input: 'to exec\n' });
    expect(piped.stdout).toBe('to exec\n');
    expect(piped.exitCode).toBe(0);

    const detached = await ctd().ctr(['tasks', 'exec', '-d', '--exec-id', 'e2', id, 'sleep', '1000']);
    expect(detached.exitCode, detached.stderr).toBe(0);
    const ps = await ctd().ctr(['tasks', 'ps', id], { check: true });
    const rows = ps.stdout.trim().split('\n').slice(1);
    expect(rows).toHaveLength(2);
    expect(rows.filter((r) => r.includes('ExecID:e2'))).toHaveLength(1);

    const killExec = await ctd().ctr(['tasks', 'kill', '--exec-id', 'e2', '--signal', 'SIGKILL', id]);
    expect(killExec.exitCode, killExec.stderr).toBe(0);
    await waitFor('the exec to be gone from ps', async () => {
      const again = await ctd().ctr(['tasks', 'ps', id], { check: true });
      return again.stdout.includes('ExecID:e2') ? undefined : true;
    });
    expect(await taskStatus(ctd(), id)).toBe('RUNNING');

    // A second exec in the background of the init, then kill -a takes all of them.
    await ctd().ctr(['tasks', 'exec', '-d', '--exec-id', 'e3', id, 'sleep', '1000'], { check: true });
    const killAll = await ctd().ctr(['tasks', 'kill', '--all', '--signal', 'SIGKILL', id]);
    expect(killAll.exitCode, killAll.stderr).toBe(0);
    await waitFor('the task to stop', async () => ((await taskStatus(ctd(), id)) === 'STOPPED' ? true : undefined));

    const del = await ctd().ctr(['tasks', 'delete', id]);
    expect(del.exitCode).toBe(0);
    expect(del.stderr).toMatch(/exit code 137/);
    expect(await taskStatus(ctd(), id)).toBeUndefined();
    if (shim) expect(zombieChildren(shim.pid)).toEqual([]);
    const rm = await ctd().ctr(['containers', 'rm', id]);
    expect(rm.exitCode, rm.stderr).toBe(0);
    expect(await containerIds(ctd())).not.toContain(id);
    await waitFor('the shim to exit', () => shimFor(ctd(), id) === undefined || undefined);
  });

  it('ctr t kill (SIGTERM) stops a task whose init handles it, and delete reports its exit code', async () => {
    const id = uniqueId('term');
    await ctd().run({
      image: image().name,
      id,
      runtime: OUTRIGGER,
      detach: true,
      args: ['sh', '-c', "trap 'exit 42' TERM; while true; do sleep 0.1; done"],
    });
    await waitFor('the task to run', async () => ((await taskStatus(ctd(), id)) === 'RUNNING' ? true : undefined));
    const kill = await ctd().ctr(['tasks', 'kill', id]);
    expect(kill.exitCode, kill.stderr).toBe(0);
    await waitFor('the task to stop', async () => ((await taskStatus(ctd(), id)) === 'STOPPED' ? true : undefined));
    const del = await ctd().ctr(['tasks', 'delete', id]);
    expect(del.stderr).toMatch(/exit code 42/);
    await ctd().ctr(['containers', 'rm', id], { check: true });
  });

  it('errors keep their meaning: kill of an unknown exec and exec with a duplicate id', async () => {
    const id = uniqueId('err');
    await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, args: ['sleep', '1000'] });
    const unknown = await ctd().ctr(['tasks', 'kill', '--exec-id', 'nope', id]);
    expect(unknown.exitCode).not.toBe(0);
    expect(unknown.stderr).toMatch(/process does not exist nope/);
    await ctd().ctr(['tasks', 'exec', '-d', '--exec-id', 'dup', id, 'sleep', '1000'], { check: true });
    const dup = await ctd().ctr(['tasks', 'exec', '-d', '--exec-id', 'dup', id, 'sleep', '1']);
    expect(dup.exitCode).not.toBe(0);
    expect(dup.stderr).toMatch(/already exists/);
    await ctd().ctr(['tasks', 'kill', '--all', '--signal', 'SIGKILL', id], { check: true });
    await waitFor('the task to stop', async () => ((await taskStatus(ctd(), id)) === 'STOPPED' ? true : undefined));
    await ctd().ctr(['tasks', 'delete', id], { check: true });
    await ctd().ctr(['containers', 'rm', id], { check: true });
  });

  it('leaves no shim process, mount, socket or runc entry behind once the tasks are gone', async () => {
    await expectNoShimLeftovers(ctd());
    expect(ctd().leftovers().processes.filter((p) => p.pid !== ctd().pid)).toEqual([]);
  });
});
