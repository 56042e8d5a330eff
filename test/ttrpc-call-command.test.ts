/**
 * `outrigger ttrpc call` against our own server (the Go shim case is in
 * test/e2e/ttrpc-interop.test.ts): JSON in, JSON out, metadata and timeout passed through,
 * remote errors and bad input as one-line messages with non-zero exit statuses.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Status as TaskStatus } from '../src/api/gen/containerd/types/task/task_pb.ts';
import { registerTaskService } from '../src/api/task-service.ts';
import { goZeroTimestamp } from '../src/api/timestamp.ts';
import { packAny } from '../src/api/typeurl.ts';
import { metadataValue } from '../src/ttrpc/metadata.ts';
import { TtrpcServer } from '../src/ttrpc/server.ts';
import { notFound } from '../src/ttrpc/status.ts';
import { MetricsSchema } from '../src/api/gen/io/containerd/cgroups/v2/metrics_pb.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');
let dir: string;
let socketPath: string;
let server: TtrpcServer;
let lastNamespace: string | undefined;
let lastDeadline: number | undefined;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttrpc-cli-'));
  socketPath = path.join(dir, 's.sock');
  server = new TtrpcServer({ logger: { warn: () => {}, error: () => {} } });
  registerTaskService(server, {
    state: (req, ctx) => {
      lastNamespace = metadataValue(ctx.metadata, 'containerd-namespace-ttrpc');
      lastDeadline = ctx.deadline;
      if (req.id !== 'c1') throw notFound('container not created');
      return { id: 'c1', pid: 42, status: TaskStatus.RUNNING, exitedAt: goZeroTimestamp() };
    },
    stats: () => ({ stats: packAny(MetricsSchema, { cpu: { usageUsec: 7n } }) }),
  });
  await server.listen(socketPath);
});

afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(repoRoot, 'src/cli/main.ts'), 'ttrpc', 'call', ...args], { env: { ...process.env, NODE_NO_WARNINGS: '1' } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('outrigger ttrpc call', () => {
  it('prints the response as protobuf JSON, defaults included', async () => {
    const r = await cli(`unix://${socketPath}`, 'containerd.task.v3.Task/State', '{"id":"c1"}', '-m', 'containerd-namespace-ttrpc=k8s.io', '--timeout', '3000');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: 'c1', pid: 42, status: 'RUNNING', exitStatus: 0, exitedAt: '0001-01-01T00:00:00Z', execId: '' });
    expect(lastNamespace).toBe('k8s.io');
    expect(lastDeadline).toBeGreaterThan(Date.now());
  });

  it('expands Any payloads by their bare type URL', async () => {
    const r = await cli(socketPath, 'containerd.task.v2.Task/Stats', '{"id":"c1"}');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).stats).toMatchObject({ '@type': 'io.containerd.cgroups.v2.Metrics', cpu: { usageUsec: '7' } });
  });

  it('reports a remote error with its code and exits 1', async () => {
    const r = await cli(socketPath, 'containerd.task.v2.Task/State', '{"id":"nope"}');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('outrigger: containerd.task.v2.Task/State: NotFound (5): container not created: not found\n');
  });

  it('reports Unimplemented from the peer for a method our server does not provide', async () => {
    const r = await cli(socketPath, 'containerd.task.v2.Task/Pause', '{"id":"c1"}');
    expect([r.code, r.stderr]).toEqual([1, 'outrigger: containerd.task.v2.Task/Pause: Unimplemented (12): method Pause\n']);
  });

  it('rejects unknown methods and bad JSON as usage errors (exit 2) without connecting', async () => {
    const unknown = await cli('/nonexistent.sock', 'containerd.task.v2.Task/Nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^outrigger: unknown method containerd.task.v2.Task\/Nope; services known to outrigger: .*containerd.task.v2.Task/);
    const bad = await cli('/nonexistent.sock', 'containerd.task.v2.Task/State', '{"id": 5}');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^outrigger: request is not valid JSON for containerd.task.v2.StateRequest/);
  });

  it('says which socket it could not reach', async () => {
    const r = await cli(path.join(dir, 'missing.sock'), 'containerd.task.v2.Task/State', '{}');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot connect to ${path.join(dir, 'missing.sock')}`);
  });
});
