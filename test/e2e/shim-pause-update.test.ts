/**
 * Pause/Resume and Update under containerd-shim-outrigger-v2, side by side with
 * io.containerd.runc.v2 in one private containerd: the task statuses ctr shows, the
 * /tasks/paused and /tasks/resumed events in order, the refusals (pause twice, resume a
 * running task, exec into a paused one), and Update reaching the container's cgroup (memory
 * limit, CPU quota) as the stock shim does. ctr 1.6 has no `tasks update`, so Update is sent
 * the way containerd forwards it: a Task/Update over ttrpc to the task's shim, with the OCI
 * LinuxResources JSON in the Any.
 */
import { describe, expect, it } from 'vitest';
import { useContainerd } from './harness.ts';
import { pauseScenario, updateScenario, updateTask } from './shim-scenarios.ts';
import { OUTRIGGER, RUNC_V2, expectNoShimLeftovers, pinnedShimBinDir, removeTask, startDetached, useTestImage } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });

describe('pause, resume and update compared with io.containerd.runc.v2', () => {
  it('imports the test image', async () => {
    await ctd().importImage(image().file);
  });

  it('pause/resume: statuses, freezer state, refusals and events as under runc.v2', async () => {
    const ours = await pauseScenario(ctd(), image().name, OUTRIGGER);
    const stock = await pauseScenario(ctd(), image().name, RUNC_V2);
    expect(ours).toMatchObject({ pause: 0, paused: 'PAUSED', freezer: 'FROZEN', pauseAgain: true, execPaused: true, resume: 0, resumed: 'RUNNING', exec: 4 });
    expect(ours.resumeRunning).toEqual([true, 'cannot resume a running process: unknown']);
    expect(ours.topics).toEqual(['/tasks/create', '/tasks/start', '/tasks/paused', '/tasks/resumed', '/tasks/exec-added', '/tasks/exec-started', '/tasks/exit', '/tasks/exit', '/tasks/delete']);
    expect(stock).toEqual(ours);
  });

  it('Update: memory limit and CPU quota reach the cgroup as under runc.v2', async () => {
    const ours = await updateScenario(ctd(), image().name, OUTRIGGER);
    const stock = await updateScenario(ctd(), image().name, RUNC_V2);
    expect(ours).toEqual({ mem: '', cpu: '', limit: String(64 * 1024 * 1024), quota: '50000', period: '100000' });
    expect(stock).toEqual(ours);
  });

  it('Update with resources that are not LinuxResources JSON is refused with InvalidArgument', async () => {
    const id = await startDetached(ctd(), image().name, OUTRIGGER, 'upd-bad');
    expect(await updateTask(ctd(), id, { memory: { limit: 1 } }, 'types.containerd.io/opencontainers/runtime-spec/1/WindowsResources')).toMatch(
      /^update .*: resources of type .*WindowsResources, want .*LinuxResources$/,
    );
    expect(await updateTask(ctd(), id, ['not', 'an', 'object'])).toMatch(/resources are not a LinuxResources JSON object/);
    await removeTask(ctd(), id);
  });

  it('leaves no shim, mount, socket or runc entry behind', async () => {
    await expectNoShimLeftovers(ctd());
  });
});
