/**
 * Pause/Resume and Update under containerd-shim-outrigger-v2, side by side with
 * io.containerd.runc.v2 in one private containerd: the task statuses ctr shows, the
 * /tasks/paused and /tasks/resumed events in order, the refusals (pause twice, resume a
 * running task, exec into a paused one), and Update reaching the container's cgroup (memory
 * limit, CPU quota) as the stock shim does. ctr 1.6 has no `tasks update`, so Update is sent
 * the way containerd forwards it: a Task/Update over ttrpc to the task's shim, with the OCI
 * LinuxResources JSON in the Any.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Task } from '../../src/api/gen/containerd/task/v2/shim_pb.ts';
import { OCI_LINUX_RESOURCES_TYPE_URL } from '../../src/api/typeurl.ts';
import { TtrpcClient } from '../../src/ttrpc/client.ts';
import { serviceClient } from '../../src/ttrpc/typed.ts';
import { describe, expect, it } from 'vitest';
import { type PrivateContainerd, uniqueId, useContainerd } from './harness.ts';
import { watchEvents } from './ctr-events.ts';
import { OUTRIGGER, RUNC_V2, outriggerShims, pinnedShimBinDir, taskStatus, useTestImage, waitFor } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });

async function detached(c: PrivateContainerd, runtime: string, prefix: string): Promise<string> {
  const id = uniqueId(prefix);
  await c.run({ image: image().name, id, runtime, detach: true, args: ['sleep', '1000'] });
  return id;
}

async function remove(c: PrivateContainerd, id: string): Promise<void> {
  await c.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
  await waitFor('the task to stop', async () => ((await taskStatus(c, id)) === 'STOPPED' ? true : undefined));
  await c.ctr(['tasks', 'delete', id], { check: true });
  await c.ctr(['containers', 'rm', id], { check: true });
}

/** What a user sees of pause/resume: statuses, refusals (exit code + last words), events. */
async function pauseScenario(runtime: string): Promise<Record<string, unknown>> {
  const c = ctd();
  const events = await watchEvents(c, image().name);
  try {
    const id = await detached(c, runtime, 'pause');
    const resumeRunning = await c.ctr(['tasks', 'resume', id]);
    const pause = await c.ctr(['tasks', 'pause', id]);
    const paused = await taskStatus(c, id);
    // The frozen process really does not run: its cgroup's freezer says so.
    const freezer = fs.readFileSync(`/sys/fs/cgroup/freezer/${c.namespace}/${id}/freezer.state`, 'utf8').trim();
    const pauseAgain = await c.ctr(['tasks', 'pause', id]);
    const execPaused = await c.ctr(['tasks', 'exec', '--exec-id', 'e1', id, 'true']);
    const resume = await c.ctr(['tasks', 'resume', id]);
    const resumed = await taskStatus(c, id);
    const exec = await c.ctr(['tasks', 'exec', '--exec-id', 'e2', id, 'sh', '-c', 'exit 4']);
    await remove(c, id);
    await waitFor('the delete event', () => (events.taskTopics(id).includes('/tasks/delete') ? true : undefined));
    const words = (r: { stderr: string }) => r.stderr.trim().split(': ').slice(-2).join(': ');
    return {
      resumeRunning: [resumeRunning.exitCode !== 0, words(resumeRunning)],
      pause: pause.exitCode,
      paused,
      freezer,
      pauseAgain: pauseAgain.exitCode !== 0,
      execPaused: execPaused.exitCode !== 0,
      resume: resume.exitCode,
      resumed,
      exec: exec.exitCode,
      topics: events.taskTopics(id),
    };
  } finally {
    events.stop();
  }
}

function cgroupValue(c: PrivateContainerd, controller: string, id: string, file: string): string {
  return fs.readFileSync(`/sys/fs/cgroup/${controller}/${c.namespace}/${id}/${file}`, 'utf8').trim();
}

/** Task/Update straight to the task's shim; the error message, or '' on success. */
async function update(c: PrivateContainerd, id: string, resources: unknown, typeUrl = OCI_LINUX_RESOURCES_TYPE_URL): Promise<string> {
  const address = fs.readFileSync(path.join(c.paths.state, 'io.containerd.runtime.v2.task', c.namespace, id, 'address'), 'utf8');
  const client = await TtrpcClient.connect(address);
  try {
    const shim = serviceClient(client, Task);
    await shim.update({ id, resources: { typeUrl, value: new TextEncoder().encode(JSON.stringify(resources)) } });
    return '';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await client.close();
  }
}

async function updateScenario(runtime: string): Promise<Record<string, string>> {
  const c = ctd();
  const id = await detached(c, runtime, 'upd');
  const out = {
    mem: await update(c, id, { memory: { limit: 64 * 1024 * 1024 } }),
    cpu: await update(c, id, { cpu: { quota: 50000, period: 100000 } }),
    limit: cgroupValue(c, 'memory', id, 'memory.limit_in_bytes'),
    quota: cgroupValue(c, 'cpu', id, 'cpu.cfs_quota_us'),
    period: cgroupValue(c, 'cpu', id, 'cpu.cfs_period_us'),
  };
  await remove(c, id);
  return out;
}

describe('pause, resume and update compared with io.containerd.runc.v2', () => {
  it('imports the test image', async () => {
    await ctd().importImage(image().file);
  });

  it('pause/resume: statuses, freezer state, refusals and events as under runc.v2', async () => {
    const ours = await pauseScenario(OUTRIGGER);
    const stock = await pauseScenario(RUNC_V2);
    expect(ours).toMatchObject({ pause: 0, paused: 'PAUSED', freezer: 'FROZEN', pauseAgain: true, execPaused: true, resume: 0, resumed: 'RUNNING', exec: 4 });
    expect(ours.resumeRunning).toEqual([true, 'cannot resume a running process: unknown']);
    expect(ours.topics).toEqual(['/tasks/create', '/tasks/start', '/tasks/paused', '/tasks/resumed', '/tasks/exec-added', '/tasks/exec-started', '/tasks/exit', '/tasks/exit', '/tasks/delete']);
    expect(stock).toEqual(ours);
  });

  it('Update: memory limit and CPU quota reach the cgroup as under runc.v2', async () => {
    const ours = await updateScenario(OUTRIGGER);
    const stock = await updateScenario(RUNC_V2);
    expect(ours).toEqual({ mem: '', cpu: '', limit: String(64 * 1024 * 1024), quota: '50000', period: '100000' });
    expect(stock).toEqual(ours);
  });

  it('Update with resources that are not LinuxResources JSON is refused with InvalidArgument', async () => {
    const id = await detached(ctd(), OUTRIGGER, 'upd-bad');
    expect(await update(ctd(), id, { memory: { limit: 1 } }, 'types.containerd.io/opencontainers/runtime-spec/1/WindowsResources')).toMatch(
      /^update .*: resources of type .*WindowsResources, want .*LinuxResources$/,
    );
    expect(await update(ctd(), id, ['not', 'an', 'object'])).toMatch(/resources are not a LinuxResources JSON object/);
    await remove(ctd(), id);
  });

  it('leaves no shim, mount, socket or runc entry behind', async () => {
    await waitFor('all shims to exit', () => outriggerShims(ctd()).length === 0 || undefined);
    const left = ctd().leftovers();
    expect(left.mounts).toEqual([]);
    expect(left.sockets).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
  });
});
