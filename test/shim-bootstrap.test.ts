/**
 * The shim binary's own contract, without containerd: `start` in a bundle with containerd 2.3's
 * BootstrapParams on stdin spawns a daemon, prints only the bare address and returns while the
 * daemon serves the Task API under both containerd.task.v2.Task and v3 (Connect answers, an
 * unknown task is NotFound, Shutdown with no task ends it and removes the socket); a second
 * `start` of the same group reuses the running daemon; `delete` with everything already gone
 * still prints a DeleteResponse (unknown pid, 137). A daemon that no Create ever reaches (containerd
 * went away between `start` and Create) leaves by itself once that start's join lapses. No shim
 * of the file's namespace may outlive a test: the teardown ends any and fails.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pidAlive } from '../scripts/dev-containerd/private-containerd.ts';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BootstrapParamsSchema } from '../src/api/gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts';
import { DeleteResponseSchema, Task } from '../src/api/gen/containerd/task/v2/shim_pb.ts';
import { TASK_SERVICE_V2, TASK_SERVICE_V3 } from '../src/api/task-service.ts';
import { TtrpcClient } from '../src/ttrpc/client.ts';
import { serviceClient } from '../src/ttrpc/typed.ts';
import { Code } from '../src/ttrpc/status.ts';
import { ShimLifetime } from '../shims/outrigger-v2/shim-lifetime.ts';
import { type ProcInfo, shimProcessesOfNamespace } from './e2e/shim-support.ts';

const repo = path.resolve(import.meta.dirname, '..');
const main = path.join(repo, 'src/cli/main.ts');
/** Every shim this file starts runs in this namespace, so its teardown can find them all. */
const namespace = `bootstrap-${process.pid}`;
let bundle: string;

beforeEach(() => {
  bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'shim-bootstrap-'));
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', annotations: {} }));
});

/**
 * Ends shims of the namespace still running (SIGTERM, which lets a daemon remove its socket;
 * SIGKILL after 5 s, and the socket removed here) and says which they were.
 */
async function endStrayShims(): Promise<ProcInfo[]> {
  const stray = shimProcessesOfNamespace(namespace);
  const signal = (procs: readonly ProcInfo[], sig: NodeJS.Signals) => {
    for (const p of procs) {
      try {
        process.kill(p.pid, sig);
      } catch {
        // gone meanwhile
      }
    }
  };
  signal(stray, 'SIGTERM');
  for (let i = 0; i < 100 && stray.some((p) => pidAlive(p.pid)); i++) await sleep(50);
  signal(stray.filter((p) => pidAlive(p.pid)), 'SIGKILL');
  for (const p of stray) {
    const socket = p.argv[p.argv.indexOf('-socket') + 1];
    if (p.argv.includes('-socket') && socket !== undefined) fs.rmSync(socket, { force: true });
  }
  return stray;
}

// A test that leaves a shim running (it failed before its Shutdown, or the daemon did not
// leave when it should) fails here, and the shim is ended so that nothing outlives the file.
afterEach(async () => {
  fs.rmSync(bundle, { recursive: true, force: true });
  const stray = await endStrayShims();
  expect(stray.map((p) => `${p.pid} ${p.argv.join(' ')}`), `shims of namespace ${namespace} still running after the test`).toEqual([]);
});
afterAll(async () => {
  expect((await endStrayShims()).map((p) => p.pid), `shims of namespace ${namespace} left by the file`).toEqual([]);
});

function shim(args: string[], input?: Uint8Array, cwd = bundle) {
  const { NODE_OPTIONS: _, ...env } = process.env;
  return spawnSync(process.execPath, [main, 'shim', ...args], { cwd, input, env, timeout: 30_000 });
}


describe('shim start / daemon / delete', () => {
  it('start with BootstrapParams: bare address out, daemon serves v2 and v3, Shutdown ends it', async () => {
    const id = `t-${Date.now()}`;
    const address = `/tmp/not-a-containerd-${process.pid}.sock`;
    const params = toBinary(BootstrapParamsSchema, create(BootstrapParamsSchema, { instanceId: id, namespace, containerdVersion: 'v2.3.0' }));
    const r = shim(['-namespace', namespace, '-address', address, '-publish-binary', '/usr/bin/containerd', '-id', id, 'start'], params);
    expect(r.stderr.toString()).toBe('');
    expect(r.status).toBe(0);
    const printed = r.stdout.toString();
    expect(printed).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    expect(fs.readFileSync(path.join(bundle, 'address'), 'utf8')).toBe(printed);
    const daemonPid = Number(fs.readFileSync(path.join(bundle, 'shim.pid'), 'utf8'));
    expect(pidAlive(daemonPid)).toBe(true);
    const socket = printed.slice('unix://'.length);
    expect(fs.statSync(socket).mode & 0o777).toBe(0o600);

    // a second start of the same group joins the running daemon
    const again = shim(['-namespace', namespace, '-address', address, '-id', id, 'start']);
    expect(again.status).toBe(0);
    expect(again.stdout.toString()).toBe(printed);
    expect(Number(fs.readFileSync(path.join(bundle, 'shim.pid'), 'utf8'))).toBe(daemonPid);

    const client = await TtrpcClient.connect(printed);
    try {
      for (const service of [TASK_SERVICE_V2, TASK_SERVICE_V3]) {
        const task = serviceClient(client, Task, service);
        const c = await task.connect({ id });
        expect(c.shimPid).toBe(daemonPid);
        await expect(task.state({ id: 'nope' })).rejects.toMatchObject({ code: Code.NotFound, message: 'state nope: container not created: not found' });
        await expect(task.pause({ id })).rejects.toMatchObject({ code: Code.NotFound, message: `pause ${id}: container not created: not found` });
      }
      await serviceClient(client, Task, TASK_SERVICE_V2).shutdown({ id });
    } finally {
      await client.close();
    }
    for (let i = 0; i < 100 && pidAlive(daemonPid); i++) await new Promise((r) => setTimeout(r, 50));
    expect(pidAlive(daemonPid)).toBe(false);
    expect(fs.existsSync(socket)).toBe(false);
  });

  it('start refuses stdin that is neither an Any nor BootstrapParams, with the reason on stderr', () => {
    const r = shim(['-namespace', namespace, '-address', '/a', '-id', 'x', 'start'], new Uint8Array([0xff, 0xff, 0xff]));
    expect(r.status).not.toBe(0);
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr.toString()).toMatch(/shim start: stdin \(3 bytes\) is neither BootstrapParams nor a protobuf Any/);
  });

  it('delete with the bundle and the container gone still answers with a DeleteResponse', () => {
    const gone = path.join(bundle, 'does-not-exist');
    const r = shim(['-namespace', namespace, '-address', '/a', '-publish-binary', '/usr/bin/containerd', '-id', 'gone', '-bundle', gone, 'delete'], undefined, bundle);
    expect(r.status).toBe(0);
    const response = fromBinary(DeleteResponseSchema, r.stdout);
    expect(response.pid).toBe(0xffffffff);
    expect(response.exitStatus).toBe(137);
    expect(Number(response.exitedAt?.seconds)).toBeGreaterThan(Date.now() / 1000 - 60);
  });

  it('-v prints version information and missing flags are a usage error', () => {
    const v = shim(['-v']);
    expect(v.status).toBe(0);
    expect(v.stdout.toString()).toMatch(/^containerd-shim-outrigger-v2:\n {2}Version: {2}\S+\n {2}Revision: \S+\n {2}Node version: v26\./);
    const bad = shim(['start']);
    expect(bad.status).toBe(2);
    expect(bad.stderr.toString()).toMatch(/shim start: missing -namespace, -id, -address/);
  });
});

describe('a daemon nobody sends a Create', () => {
  it('leaves once the join of the start that spawned it lapses, with no other call to wake it', async () => {
    // The daemon's only call (serve-task-api.ts): containerd never dialled it (it died between
    // start and Create, or a test ended there), so no Create, Delete or Shutdown ever comes.
    const stops: string[] = [];
    const lifetime = new ShimLifetime({ tasks: () => 0, stop: (why) => stops.push(why), joinTtlMs: 50 });
    lifetime.join('spawning-task');
    for (let i = 0; i < 200 && stops.length === 0; i++) await sleep(10);
    expect(stops).toEqual(['joined tasks never arrived and no task is left']);
    expect(lifetime.leaving).toBe(true);
  });

  it('is held by a task that did arrive, and by a later join, past the first join\'s lapse', async () => {
    let tasks = 0;
    const stops: string[] = [];
    const lifetime = new ShimLifetime({ tasks: () => tasks, stop: (why) => stops.push(why), joinTtlMs: 50 });
    lifetime.join('a');
    lifetime.created('a');
    tasks = 1;
    await sleep(120);
    expect(stops).toEqual([]);
    tasks = 0;
    lifetime.join('b');
    lifetime.shutdownRequested('a');
    expect(stops).toEqual([]); // b's start joined and its Create may still come
    for (let i = 0; i < 200 && stops.length === 0; i++) await sleep(10);
    expect(stops).toEqual(['joined tasks never arrived and no task is left']);
  });
});
