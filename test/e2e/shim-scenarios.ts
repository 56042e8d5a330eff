/**
 * Scenarios the shim e2e tests run under more than one shim or OCI runtime and compare: each
 * takes the containerd, the image and a RuntimeChoice (our shim or io.containerd.runc.v2, with
 * runc or, through options, crun) and returns what a user sees, so a test can assert the
 * outcome once and then that the other shim/runtime gives the same record. Kept apart from
 * shim-support.ts because these build on ctr-events.ts and ctr-on-pty.ts, which import it.
 *
 * `observe`, where a scenario takes it, is called with the container id at the points the
 * scenario names (e.g. running, paused, resumed); what it returns is collected in the record's
 * `observed` list, so a test can also compare what the OCI runtime itself says (`crun state`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { Task } from '../../src/api/gen/containerd/task/v2/shim_pb.ts';
import { OCI_LINUX_RESOURCES_TYPE_URL } from '../../src/api/typeurl.ts';
import { TtrpcClient } from '../../src/ttrpc/client.ts';
import { serviceClient } from '../../src/ttrpc/typed.ts';
import { watchEvents } from './ctr-events.ts';
import { ctrOnPty, type PtySession } from './ctr-on-pty.ts';
import { type PrivateContainerd, uniqueId } from './harness.ts';
import { cgroupValue, removeTask, resolveChoice, type RuntimeChoice, startDetached, taskStatus, waitFor } from './shim-support.ts';

export type Observe = (id: string) => unknown;

/** What `observe` saw, in order; absent when there is no observer (so runc-only records stay as they were). */
function observer(observe: Observe | undefined): { see(id: string): Promise<void>; record(): { observed?: unknown[] } } {
  const seen: unknown[] = [];
  return {
    see: async (id) => {
      if (observe) seen.push(await observe(id));
    },
    record: () => (observe ? { observed: seen } : {}),
  };
}

// ---- terminals ------------------------------------------------------------------------------

/**
 * Prints each new terminal size until it is 33x101, then reads a line and exits 3. ctr sends
 * the size only after Start, so the first looks may find none (stty fails on 0x0): skipped.
 */
export const TTY_SIZE_SCRIPT =
  'last=""; while :; do s=$(stty size 2>/dev/null); if [ -n "$s" ] && [ "$s" != "$last" ]; then echo "size $s"; last=$s; fi; ' +
  '[ "$s" = "33 101" ] && break; sleep 0.1; done; read line; echo "got $line"; exit 3';

/** What a user at the terminal does with TTY_SIZE_SCRIPT: waits for the start size, resizes, types a line. */
export async function driveSizeScript(session: PtySession, whileRunning?: () => Promise<void>): Promise<{ exitCode: number; text: string }> {
  await session.waitForOutput(/size 24 80\r*\n/);
  await whileRunning?.();
  session.resize(33, 101);
  await session.waitForOutput(/size 33 101\r*\n/);
  session.write('hello\n');
  const { exitCode, output } = await session.done;
  // ctr keeps output processing on in its raw mode, so its terminal adds a \r of its own.
  return { exitCode, text: output.toString().replace(/\r+\n/g, '\n') };
}

/** `ctr run -t --rm` of TTY_SIZE_SCRIPT on a real pty; `observe` once the start size arrived. */
export async function ttyRun(c: PrivateContainerd, image: string, choice: RuntimeChoice, observe?: Observe): Promise<Record<string, unknown>> {
  const { runtime, flags } = resolveChoice(choice);
  const id = uniqueId('tty');
  const seen = observer(observe);
  const r = await driveSizeScript(ctrOnPty(c, ['run', '-t', '--rm', '--runtime', runtime, ...flags, image, id, 'sh', '-c', TTY_SIZE_SCRIPT]), () => seen.see(id));
  return { ...r, ...seen.record() };
}

/** The same script as an exec -t in a running container: ResizePty with an exec id. */
export async function ttyExec(c: PrivateContainerd, image: string, choice: RuntimeChoice, observe?: Observe): Promise<Record<string, unknown>> {
  const id = await startDetached(c, image, choice, 'ttyx');
  const seen = observer(observe);
  const r = await driveSizeScript(ctrOnPty(c, ['tasks', 'exec', '-t', '--exec-id', 'sz', id, 'sh', '-c', TTY_SIZE_SCRIPT]), () => seen.see(id));
  await removeTask(c, id);
  return { ...r, ...seen.record() };
}

// ---- pause, resume, update ------------------------------------------------------------------

/**
 * What a user sees of pause/resume: statuses, the freezer state, refusals (exit code + last
 * words), events. `observe` at running, paused and resumed.
 */
export async function pauseScenario(c: PrivateContainerd, image: string, choice: RuntimeChoice, observe?: Observe): Promise<Record<string, unknown>> {
  const events = await watchEvents(c, image);
  const seen = observer(observe);
  try {
    const id = await startDetached(c, image, choice, 'pause');
    await seen.see(id);
    const resumeRunning = await c.ctr(['tasks', 'resume', id]);
    const pause = await c.ctr(['tasks', 'pause', id]);
    const paused = await taskStatus(c, id);
    await seen.see(id);
    // The frozen process really does not run: its cgroup's freezer says so.
    const freezer = cgroupValue(c, 'freezer', id, 'freezer.state');
    const pauseAgain = await c.ctr(['tasks', 'pause', id]);
    const execPaused = await c.ctr(['tasks', 'exec', '--exec-id', 'e1', id, 'true']);
    const resume = await c.ctr(['tasks', 'resume', id]);
    const resumed = await taskStatus(c, id);
    await seen.see(id);
    const exec = await c.ctr(['tasks', 'exec', '--exec-id', 'e2', id, 'sh', '-c', 'exit 4']);
    await removeTask(c, id);
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
      ...seen.record(),
    };
  } finally {
    events.stop();
  }
}

/**
 * Task/Update straight to the task's shim, as containerd forwards it (ctr 1.6 has no `tasks
 * update`), with the OCI LinuxResources JSON in the Any; the error message, or '' on success.
 */
export async function updateTask(c: PrivateContainerd, id: string, resources: unknown, typeUrl = OCI_LINUX_RESOURCES_TYPE_URL): Promise<string> {
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

/** Memory limit and CPU quota through Update, and what the container's cgroup then says. */
export async function updateScenario(c: PrivateContainerd, image: string, choice: RuntimeChoice, observe?: Observe): Promise<Record<string, unknown>> {
  const id = await startDetached(c, image, choice, 'upd');
  const seen = observer(observe);
  await seen.see(id);
  const out = {
    mem: await updateTask(c, id, { memory: { limit: 64 * 1024 * 1024 } }),
    cpu: await updateTask(c, id, { cpu: { quota: 50000, period: 100000 } }),
    limit: cgroupValue(c, 'memory', id, 'memory.limit_in_bytes'),
    quota: cgroupValue(c, 'cpu', id, 'cpu.cfs_quota_us'),
    period: cgroupValue(c, 'cpu', id, 'cpu.cfs_period_us'),
    ...seen.record(),
  };
  await removeTask(c, id);
  return out;
}

// ---- stats and OOM --------------------------------------------------------------------------

/**
 * Dotted paths of every object and array in a metrics JSON (arrays as one [] step): which
 * groups of metrics a shim reports. Scalar leaves are left out on purpose: ctr prints Go
 * structs with omitempty, so a counter that is 0 in one run (cpu.usage.kernel,
 * memory.cache) is absent there and present in the next, under the same shim.
 */
export function metricGroups(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) return [...new Set([`${prefix}[]`, ...value.flatMap((v) => metricGroups(v, `${prefix}[]`))])];
  if (value !== null && typeof value === 'object') {
    return [...(prefix ? [prefix] : []), ...Object.entries(value).flatMap(([k, v]) => metricGroups(v, prefix ? `${prefix}.${k}` : k))];
  }
  return [];
}

/**
 * An OOM run's record without /tasks/oom, for comparing with io.containerd.runc.v2: the Go
 * shim publishes TaskOOM from its OOM watcher goroutine, outside the order of its other
 * events, and drops it when the cgroup is already gone by the time the watcher looks. On this
 * loaded host both happened (oom after exit; no oom at all), so only our shim's record is
 * asserted with /tasks/oom in place; the tests log what the stock shim sent.
 */
export function apartFromOom<T extends { topics: string[] }>(r: T): T {
  return { ...r, topics: r.topics.filter((t) => t !== '/tasks/oom') };
}

/** The part of `ctr t metrics --format json` (io.containerd.cgroups.v1.Metrics) the tests read. */
export interface V1MetricsJson {
  pids?: { current?: number };
  cpu?: { usage?: { total?: number; user?: number; per_cpu?: number[] } };
  memory?: { usage?: { usage?: number; limit?: number }; total_rss?: number };
}

/** `ctr t metrics` (json and table) of a 64 MB-limited container after some busy work in an exec. */
export async function metricsOf(c: PrivateContainerd, image: string, choice: RuntimeChoice, observe?: Observe): Promise<{ json: V1MetricsJson; table: string; observed?: unknown[] }> {
  const id = await startDetached(c, image, choice, 'stats', { flags: ['--memory-limit', String(64 * 1024 * 1024)] });
  const seen = observer(observe);
  await seen.see(id);
  // Some CPU time and memory to show: a busy loop in an exec.
  await c.ctr(['tasks', 'exec', '--exec-id', 'busy', id, 'sh', '-c', 'i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done'], { check: true });
  const json = JSON.parse((await c.ctr(['tasks', 'metrics', '--format', 'json', id], { check: true })).stdout) as V1MetricsJson;
  const table = (await c.ctr(['tasks', 'metrics', id], { check: true })).stdout;
  await removeTask(c, id);
  return { json, table, ...seen.record() };
}

/**
 * The numbers of metricsOf's container are real: one process, memory in use under the 64 MB
 * limit, CPU time spent, per CPU; the table ctr prints shows them; and the same groups of
 * metrics as `other` (values, and with them which zero counters are omitted, vary).
 */
export function expectRealV1Metrics(m: { json: V1MetricsJson; table: string }, other: { json: V1MetricsJson }): void {
  expect(m.json.pids?.current).toBe(1);
  expect(m.json.memory?.usage?.usage).toBeGreaterThan(0);
  expect(m.json.memory?.usage?.limit).toBe(64 * 1024 * 1024);
  expect(m.json.cpu?.usage?.total).toBeGreaterThan(0);
  expect(m.json.cpu?.usage?.per_cpu?.length).toBeGreaterThan(0);
  expect(m.table).toMatch(/memory\.usage_in_bytes\s+[1-9]\d*/);
  expect(m.table).toMatch(/cpuacct\.usage\s+[1-9]\d*/);
  expect(m.table).toMatch(/pids\.current\s+1\b/);
  expect(metricGroups(m.json).sort()).toEqual(metricGroups(other.json).sort());
}

export const OOM_LIMIT = String(8 * 1024 * 1024);

/**
 * `ctr run --rm` under an 8 MB limit; the init's own command by default is tail buffering
 * /dev/zero, a line that never ends, so its memory grows until the OOM killer takes it (the
 * image has no tail link; busybox sh runs its applets, and exec makes it the init).
 */
export async function oomRun(
  c: PrivateContainerd,
  image: string,
  choice: RuntimeChoice,
  args: string[] = ['sh', '-c', 'exec tail /dev/zero'],
): Promise<{ exitCode: number; topics: string[]; exitStatus: string | undefined }> {
  const events = await watchEvents(c, image);
  try {
    const id = uniqueId('oom');
    const { runtime, flags } = resolveChoice(choice);
    const r = await c.run({ image, id, runtime, flags: [...flags, '--memory-limit', OOM_LIMIT], args });
    await waitFor('the delete event', () => (events.taskTopics(id).includes('/tasks/delete') ? true : undefined));
    const exit = events.lines().find((l) => l.includes('/tasks/exit') && l.includes(`"container_id":"${id}"`));
    return { exitCode: r.exitCode, topics: events.taskTopics(id), exitStatus: /"exit_status":(\d+)/.exec(exit ?? '')?.[1] };
  } finally {
    events.stop();
  }
}
