/**
 * Interop with real Go ttrpc peers, containerd 1.6 and its stock containerd-shim-runc-v2:
 * our client reads the shim's address from the bundle, calls Connect, State, Pids and Stats and
 * gets what `ctr` reports; Go's own error answers decode to the right codes; the `ttrpc call`
 * CLI prints the same State; and containerd accepts a TaskOOM we forward to its ttrpc socket,
 * which `ctr events` then prints.
 */
import { spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { create } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskOOMSchema } from '../../src/api/gen/containerd/events/task_pb.ts';
import { ProcessDetailsSchema } from '../../src/api/gen/containerd/runc/v1/oci_pb.ts';
import { EnvelopeSchema, Events, ForwardRequestSchema } from '../../src/api/gen/containerd/services/events/ttrpc/v1/events_pb.ts';
import { Task } from '../../src/api/gen/containerd/task/v2/shim_pb.ts';
import { Status as TaskStatus } from '../../src/api/gen/containerd/types/task/task_pb.ts';
import { MetricsSchema as CgroupV1MetricsSchema } from '../../src/api/gen/io/containerd/cgroups/v1/metrics_pb.ts';
import { forwardRequestFor, NAMESPACE_METADATA_KEY } from '../../src/api/task-events.ts';
import { GO_ZERO_TIME_SECONDS } from '../../src/api/timestamp.ts';
import { anyIs, packAny, unpackAny } from '../../src/api/typeurl.ts';
import { TtrpcClient } from '../../src/ttrpc/client.ts';
import { Code } from '../../src/ttrpc/status.ts';
import { serviceClient } from '../../src/ttrpc/typed.ts';
import { buildTestImages, type BuiltImage } from '../../scripts/test-images.ts';
import { uniqueId, useContainerd } from './harness.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const imageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttrpc-interop-images-'));
let image: BuiltImage;
const clients: TtrpcClient[] = [];

const ctd = useContainerd();

beforeAll(async () => {
  [image] = (await buildTestImages({ outDir: imageDir, media: ['tar'], salt: `ttrpc-${process.pid}` })) as [BuiltImage];
  await ctd().importImage(image.file);
});

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  fs.rmSync(imageDir, { recursive: true, force: true });
});

async function connect(address: string): Promise<TtrpcClient> {
  const c = await TtrpcClient.connect(address);
  clients.push(c);
  return c;
}

/** The `address` file the runc shim's start wrote into the task bundle. */
function shimAddress(id: string): string {
  return fs.readFileSync(path.join(ctd().paths.state, 'io.containerd.runtime.v2.task', ctd().namespace, id, 'address'), 'utf8');
}

/** Rows of a ctr table, split on runs of spaces, header dropped. */
function rows(stdout: string): string[][] {
  return stdout
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/));
}

describe('our client against the stock containerd-shim-runc-v2 (containerd 1.6)', () => {
  let id: string;

  beforeAll(async () => {
    id = uniqueId('ttrpc');
    const r = await ctd().run({ image: image.name, id, detach: true, args: ['sleep', '100000'] });
    expect(r.exitCode, r.stderr).toBe(0);
  });

  it('reads a unix:// address from the bundle and gets Connect and State matching `ctr task ls`', async () => {
    const address = shimAddress(id);
    expect(address).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    const client = await connect(address);
    const shim = serviceClient(client, Task);

    const ls = rows((await ctd().ctr(['task', 'ls'], { check: true })).stdout).find((r) => r[0] === id);
    expect(ls, 'ctr task ls lists the task').toBeDefined();
    const [, ctrPid, ctrStatus] = ls!;

    const connected = await shim.connect({ id });
    expect(connected.taskPid).toBe(Number(ctrPid));
    const shimCmdline = fs.readFileSync(`/proc/${connected.shimPid}/cmdline`, 'utf8').split('\0');
    expect(shimCmdline[0]).toMatch(/containerd-shim-runc-v2$/);

    const state = await shim.state({ id }, { timeoutMs: 2000 });
    expect(state.id).toBe(id);
    expect(state.pid).toBe(Number(ctrPid));
    expect(ctrStatus).toBe('RUNNING');
    expect(state.status).toBe(TaskStatus.RUNNING);
    expect(state.bundle).toBe(path.join(ctd().paths.state, 'io.containerd.runtime.v2.task', ctd().namespace, id));
    // the Go shim sends the zero time while the process runs, as the reference says
    expect(state.exitedAt?.seconds).toBe(GO_ZERO_TIME_SECONDS);
  });

  it('Pids lists what `ctr task ps` lists, with ProcessDetails for an exec', async () => {
    const exec = await ctd().ctr(['task', 'exec', '-d', '--exec-id', 'e1', id, 'sleep', '100000'], { check: true });
    expect(exec.exitCode).toBe(0);
    const shim = serviceClient(await connect(shimAddress(id)), Task);
    const { processes } = await shim.pids({ id });
    const ps = rows((await ctd().ctr(['task', 'ps', id], { check: true })).stdout);
    expect(processes.map((p) => p.pid).sort()).toEqual(ps.map((r) => Number(r[0])).sort());
    const execs = processes.filter((p) => anyIs(p.info, ProcessDetailsSchema));
    expect(execs).toHaveLength(1);
    expect(execs[0]!.info!.typeUrl).toBe('containerd.runc.v1.ProcessDetails');
    expect(unpackAny(execs[0]!.info!, ProcessDetailsSchema).execId).toBe('e1');
    const execState = await shim.state({ id, execId: 'e1' });
    // the Go shim answers an exec's State with id = the exec id and exec_id left empty
    expect([execState.id, execState.execId, execState.pid, execState.status]).toEqual(['e1', '', execs[0]!.pid, TaskStatus.RUNNING]);
  });

  it('Stats carries io.containerd.cgroups.v1.Metrics agreeing with `ctr task metrics`', async () => {
    const shim = serviceClient(await connect(shimAddress(id)), Task);
    const { stats } = await shim.stats({ id });
    expect(stats?.typeUrl).toBe('io.containerd.cgroups.v1.Metrics');
    const metrics = unpackAny(stats!, CgroupV1MetricsSchema);
    const table = new Map(rows((await ctd().ctr(['task', 'metrics', id], { check: true })).stdout).map((r) => [r[0], r[1]]));
    // pids and the memory limit do not move between the two reads; usage does
    expect(String(metrics.pids?.current)).toBe(table.get('pids.current'));
    expect(metrics.pids?.current).toBe(2n); // init sleep and the exec
    expect(String(metrics.memory?.usage?.limit)).toBe(table.get('memory.limit_in_bytes'));
    expect(metrics.memory?.usage?.usage).toBeGreaterThan(0n);
    expect(metrics.cpu?.usage?.total).toBeGreaterThan(0n);
  });

  it('decodes the Go shim`s errors: NotFound for an unknown task, Unimplemented for v3 and unknown methods', async () => {
    const client = await connect(shimAddress(id));
    await expect(serviceClient(client, Task).state({ id: 'no-such-task' })).rejects.toMatchObject({
      code: Code.NotFound,
      message: expect.stringMatching(/not found$/),
    });
    // containerd 1.6's shim serves only the v2 name
    await expect(client.call('containerd.task.v3.Task', 'State', new Uint8Array())).rejects.toMatchObject({
      code: Code.Unimplemented,
      message: 'service containerd.task.v3.Task',
    });
    await expect(client.call('containerd.task.v2.Task', 'Nope', new Uint8Array())).rejects.toMatchObject({ code: Code.Unimplemented, message: 'method Nope' });
  });

  it('`outrigger ttrpc call` prints the shim`s State as JSON', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.join(repoRoot, 'src/cli/main.ts'), 'ttrpc', 'call', shimAddress(id), 'containerd.task.v2.Task/State', JSON.stringify({ id })],
      { env: { ...process.env, NODE_NO_WARNINGS: '1' } },
    );
    const json = JSON.parse(stdout) as Record<string, unknown>;
    expect(json.id).toBe(id);
    expect(json.status).toBe('RUNNING');
    expect(json.exitedAt).toBe('0001-01-01T00:00:00Z');
  });

  afterAll(async () => {
    await ctd().ctr(['task', 'kill', '-s', 'KILL', id]);
    for (let i = 0; i < 100; i++) {
      const ls = (await ctd().ctr(['task', 'ls'])).stdout;
      if (!ls.includes(`${id} `) || /STOPPED/.test(ls.split('\n').find((l) => l.startsWith(id)) ?? '')) break;
      await sleep(50);
    }
    await ctd().ctr(['task', 'delete', id]);
    await ctd().ctr(['container', 'delete', id]);
  });
});

describe('our client forwarding events to containerd 1.6', () => {
  it('containerd accepts a TaskOOM on Events/Forward and `ctr events` prints it', async () => {
    const events = spawn('/usr/bin/ctr', ['--address', ctd().address, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let printed = '';
    events.stdout.on('data', (d: Buffer) => {
      printed += d.toString();
    });
    try {
      const client = await connect(`unix://${ctd().paths.ttrpcAddress}`);
      const forward = serviceClient(client, Events);
      const containerId = uniqueId('oom');
      const ns = ctd().namespace;
      // `ctr events` subscribes asynchronously; publish until it shows up (each publish must succeed).
      for (let i = 0; i < 100 && !printed.includes(containerId); i++) {
        await forward.forward(forwardRequestFor(ns, TaskOOMSchema, { containerId }), {
          timeoutMs: 5000,
          metadata: { [NAMESPACE_METADATA_KEY]: ns },
        });
        await sleep(100);
      }
      const line = printed.split('\n').find((l) => l.includes(containerId));
      expect(line, `ctr events printed:\n${printed}`).toBeDefined();
      expect(line).toContain(` ${ns} `);
      expect(line).toContain('/tasks/oom');
      expect(line).toContain(`"container_id":"${containerId}"`);

      // and containerd validates the envelope: no timestamp is InvalidArgument
      const bad = create(ForwardRequestSchema, {
        envelope: create(EnvelopeSchema, { namespace: ns, topic: '/tasks/oom', event: packAny(TaskOOMSchema, { containerId }) }),
      });
      await expect(forward.forward(bad, { timeoutMs: 5000, metadata: { [NAMESPACE_METADATA_KEY]: ns } })).rejects.toMatchObject({
        code: Code.InvalidArgument,
        message: 'timestamp must be set on forwarded event: invalid argument',
      });
    } finally {
      events.kill('SIGTERM');
    }
  });
});
