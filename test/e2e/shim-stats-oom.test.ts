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
import { type PrivateContainerd, uniqueId, useContainerd } from './harness.ts';
import { watchEvents } from './ctr-events.ts';
import { OUTRIGGER, RUNC_V2, outriggerShims, pinnedShimBinDir, taskStatus, useTestImage, waitFor } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });
const LIMIT = String(8 * 1024 * 1024);

async function remove(c: PrivateContainerd, id: string): Promise<void> {
  await c.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
  await waitFor('the task to stop', async () => ((await taskStatus(c, id)) === 'STOPPED' ? true : undefined));
  await c.ctr(['tasks', 'delete', id], { check: true });
  await c.ctr(['containers', 'rm', id], { check: true });
}

/** Dotted paths of every leaf in a JSON value (arrays as one [] step). */
function leafPaths(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) return value.length === 0 ? [`${prefix}[]`] : [...new Set(value.flatMap((v) => leafPaths(v, `${prefix}[]`)))];
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => leafPaths(v, prefix ? `${prefix}.${k}` : k));
  return [prefix];
}

interface V1Json {
  pids?: { current?: number };
  cpu?: { usage?: { total?: number; user?: number; per_cpu?: number[] } };
  memory?: { usage?: { usage?: number; limit?: number }; total_rss?: number };
}

async function metricsOf(runtime: string): Promise<{ json: V1Json; table: string }> {
  const c = ctd();
  const id = uniqueId('stats');
  await c.run({ image: image().name, id, runtime, detach: true, flags: ['--memory-limit', String(64 * 1024 * 1024)], args: ['sleep', '1000'] });
  // Some CPU time and memory to show: a busy loop in an exec.
  await c.ctr(['tasks', 'exec', '--exec-id', 'busy', id, 'sh', '-c', 'i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done'], { check: true });
  const json = JSON.parse((await c.ctr(['tasks', 'metrics', '--format', 'json', id], { check: true })).stdout) as V1Json;
  const table = (await c.ctr(['tasks', 'metrics', id], { check: true })).stdout;
  await remove(c, id);
  return { json, table };
}

/** The init's own command: by default tail buffering /dev/zero, whose memory grows until the kill. */
async function oomRun(runtime: string, args: string[] = ['sh', '-c', 'exec tail /dev/zero']): Promise<{ exitCode: number; topics: string[]; exitStatus: string | undefined }> {
  const c = ctd();
  const events = await watchEvents(c, image().name);
  try {
    const id = uniqueId('oom');
    // tail buffers a line that never ends: its memory grows until the OOM killer takes it.
    // (The image has no tail link; busybox sh runs its applets, and exec makes it the init.)
    const r = await c.run({ image: image().name, id, runtime, flags: ['--memory-limit', LIMIT], args });
    await waitFor('the delete event', () => (events.taskTopics(id).includes('/tasks/delete') ? true : undefined));
    const exit = events.lines().find((l) => l.includes('/tasks/exit') && l.includes(`"container_id":"${id}"`));
    return { exitCode: r.exitCode, topics: events.taskTopics(id), exitStatus: /"exit_status":(\d+)/.exec(exit ?? '')?.[1] };
  } finally {
    events.stop();
  }
}

async function oomOfChild(runtime: string): Promise<{ topics: string[]; status: string | undefined; oomKill: number | undefined }> {
  const c = ctd();
  const events = await watchEvents(c, image().name);
  try {
    const id = uniqueId('oomc');
    await c.run({ image: image().name, id, runtime, detach: true, flags: ['--memory-limit', LIMIT], args: ['sh', '-c', 'tail /dev/zero; sleep 1000'] });
    await waitFor('the OOM event', () => (events.taskTopics(id).includes('/tasks/oom') ? true : undefined));
    const status = await taskStatus(c, id);
    const json = JSON.parse((await c.ctr(['tasks', 'metrics', '--format', 'json', id], { check: true })).stdout) as { memory_oom_control?: { oom_kill?: number } };
    await remove(c, id);
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
    const ours = await metricsOf(OUTRIGGER);
    const stock = await metricsOf(RUNC_V2);
    expect(ours.json.pids?.current).toBe(1);
    expect(ours.json.memory?.usage?.usage).toBeGreaterThan(0);
    expect(ours.json.memory?.usage?.limit).toBe(64 * 1024 * 1024);
    expect(ours.json.cpu?.usage?.total).toBeGreaterThan(0);
    expect(ours.json.cpu?.usage?.per_cpu?.length).toBeGreaterThan(0);
    expect(ours.table).toMatch(/memory\.usage_in_bytes\s+[1-9]\d*/);
    expect(ours.table).toMatch(/cpuacct\.usage\s+[1-9]\d*/);
    expect(ours.table).toMatch(/pids\.current\s+1\b/);
    // The same metric names are present (values differ from run to run).
    expect(leafPaths(ours.json).sort()).toEqual(leafPaths(stock.json).sort());
  });

  it('OOM of the init under an 8 MB limit: /tasks/oom, then /tasks/exit with 137, as under runc.v2', async () => {
    const ours = await oomRun(OUTRIGGER);
    const stock = await oomRun(RUNC_V2);
    expect(ours).toEqual({ exitCode: 137, exitStatus: '137', topics: ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete'] });
    expect(stock).toEqual(ours);
  });

  it('OOM right after start (init allocates at once), five runs: /tasks/oom before /tasks/exit every time', async () => {
    // The watch starts at Create, so a kill in the first milliseconds after Start is seen.
    const full = ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete'];
    // dd's first read fills a 32 MB buffer: the limit is hit within the first milliseconds.
    const immediate = ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=32M', 'count=1'];
    for (let i = 0; i < 5; i++) expect(await oomRun(OUTRIGGER, immediate)).toEqual({ exitCode: 137, exitStatus: '137', topics: full });
    // runc.v2 starts its watch at Start and may miss the event: counted for the doc, not asserted.
    let stockMissed = 0;
    for (let i = 0; i < 5; i++) if (!(await oomRun(RUNC_V2, immediate)).topics.includes('/tasks/oom')) stockMissed++;
    console.log(`io.containerd.runc.v2 missed /tasks/oom in ${stockMissed} of 5 immediate-OOM runs`);
  });

  it('OOM of a child the init survives: /tasks/oom while the task keeps running, counted in the metrics', async () => {
    const ours = await oomOfChild(OUTRIGGER);
    const stock = await oomOfChild(RUNC_V2);
    expect(ours).toEqual({ status: 'RUNNING', oomKill: 1, topics: ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete'] });
    expect(stock).toEqual(ours);
  });

  it('leaves no shim, mount, socket or runc entry behind', async () => {
    await waitFor('all shims to exit', () => outriggerShims(ctd()).length === 0 || undefined);
    const left = ctd().leftovers();
    expect(left.mounts).toEqual([]);
    expect(left.sockets).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
  });
});
