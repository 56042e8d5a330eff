/**
 * The shim binary's own contract, without containerd: `start` in a bundle with containerd 2.3's
 * BootstrapParams on stdin spawns a daemon, prints only the bare address and returns while the
 * daemon serves the Task API under both containerd.task.v2.Task and v3 (Connect answers, an
 * unknown task is NotFound, Shutdown with no task ends it and removes the socket); a second
 * `start` of the same group reuses the running daemon; `delete` with everything already gone
 * still prints a DeleteResponse (unknown pid, 137).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pidAlive } from '../scripts/dev-containerd/private-containerd.ts';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BootstrapParamsSchema } from '../src/api/gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts';
import { DeleteResponseSchema, Task } from '../src/api/gen/containerd/task/v2/shim_pb.ts';
import { TASK_SERVICE_V2, TASK_SERVICE_V3 } from '../src/api/task-service.ts';
import { TtrpcClient } from '../src/ttrpc/client.ts';
import { serviceClient } from '../src/ttrpc/typed.ts';
import { Code } from '../src/ttrpc/status.ts';

const repo = path.resolve(import.meta.dirname, '..');
const main = path.join(repo, 'src/cli/main.ts');
let bundle: string;
let namespace: string;

beforeEach(() => {
  bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'shim-bootstrap-'));
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', annotations: {} }));
  namespace = `bootstrap-${process.pid}`;
});
afterEach(() => fs.rmSync(bundle, { recursive: true, force: true }));

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
