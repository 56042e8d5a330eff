/**
 * Stats and OOM under containerd-shim-outrigger-v2, side by side with io.containerd.runc.v2 in
 * one private containerd on this cgroup v1 ("hybrid") host:
 * - `ctr t metrics` shows real numbers (memory usage, CPU time, pids) and the same set of
 *   metrics the stock shim reports (io.containerd.cgroups.v1.Metrics);
 * - a container whose init is OOM-killed under an 8 MB limit yields /tasks/oom and then
 *   /tasks/exit with status 137, in that order, as under runc.v2;
 * - an OOM kill of a child the init survives is still reported (/tasks/oom, no exit) and
 *   counted in the metrics.
 */
import { describe, expect, it } from 'vitest';
import { uniqueId, useContainerd } from './harness.ts';
import { watchEvents } from './ctr-events.ts';
import { expectRealV1Metrics, metricsOf, OOM_LIMIT, oomRun, apartFromOom } from './shim-scenarios.ts';
import { OUTRIGGER, RUNC_V2, expectNoShimLeftovers, pinnedShimBinDir, removeTask, taskStatus, useTestImage, waitFor } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });

async function oomOfChild(runtime: string): Promise<{ topics: string[]; status: string | undefined; oomKill: number | undefined }> {
  const c = ctd();
  const events = await watchEvents(c, image().name);
  try {
    const id = uniqueId('oomc');
    await c.run({ image: image().name, id, runtime, detach: true, flags: ['--memory-limit', OOM_LIMIT], args: ['sh', '-c', 'tail /dev/zero; sleep 1000'] });
    await waitFor('the OOM event', () => (events.taskTopics(id).includes('/tasks/oom') ? true : undefined));
    const status = await taskStatus(c, id);
    const json = JSON.parse((await c.ctr(['tasks', 'metrics', '--format', 'json', id], { check: true })).stdout) as { memory_oom_control?: { oom_kill?: number } };
    await removeTask(c, id);
    await waitFor('the delete event', () => (events.taskTopics(id).includes('/tasks/delete') ? true : undefined));
    return { topics: events.taskTopics(id), status, oomKill: json.memory_oom_control?.oom_kill };
  } finally {
    events.stop();
  }
}

describe('stats and OOM compared with io.containerd.runc.v2', () => {
  it('imports the test image', async () => {
    await ctd().importImage(image().file);
  });

  it('ctr t metrics: real numbers, and the same metrics as under runc.v2', async () => {
    const ours = await metricsOf(ctd(), image().name, OUTRIGGER);
    const stock = await metricsOf(ctd(), image().name, RUNC_V2);
    expectRealV1Metrics(ours, stock);
  });

  it('OOM of the init under an 8 MB limit: /tasks/oom, then /tasks/exit with 137, as under runc.v2', async () => {
    const ours = await oomRun(ctd(), image().name, OUTRIGGER);
    const stock = await oomRun(ctd(), image().name, RUNC_V2);
    expect(ours).toEqual({ exitCode: 137, exitStatus: '137', topics: ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete'] });
    expect(apartFromOom(stock)).toEqual(apartFromOom(ours));
    console.log(`io.containerd.runc.v2 topics of an OOM-killed init: ${stock.topics.join(' ')}`);
  });

  it('OOM right after start (init allocates at once), five runs: /tasks/oom before /tasks/exit every time', async () => {
    // The watch starts at Create, so a kill in the first milliseconds after Start is seen.
    const full = ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete'];
    // dd's first read fills a 32 MB buffer: the limit is hit within the first milliseconds.
    const immediate = ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=32M', 'count=1'];
    for (let i = 0; i < 5; i++) expect(await oomRun(ctd(), image().name, OUTRIGGER, immediate)).toEqual({ exitCode: 137, exitStatus: '137', topics: full });
    // runc.v2 starts its watch at Start and may miss the event: counted for the doc, not asserted.
    let stockMissed = 0;
    for (let i = 0; i < 5; i++) if (!(await oomRun(ctd(), image().name, RUNC_V2, immediate)).topics.includes('/tasks/oom')) stockMissed++;
    console.log(`io.containerd.runc.v2 missed /tasks/oom in ${stockMissed} of 5 immediate-OOM runs`);
  });

  it('OOM of a child the init survives: /tasks/oom while the task keeps running, counted in the metrics', async () => {
    const ours = await oomOfChild(OUTRIGGER);
    const stock = await oomOfChild(RUNC_V2);
    expect(ours).toEqual({ status: 'RUNNING', oomKill: 1, topics: ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete'] });
    expect(stock).toEqual(ours);
  });

  it('leaves no shim, mount, socket or runc entry behind', async () => {
    await expectNoShimLeftovers(ctd());
  });
});
