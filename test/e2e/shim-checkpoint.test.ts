/**
 * Checkpoint under containerd-shim-outrigger-v2, side by side with io.containerd.runc.v2.
 *
 * CRIU 3.17.1 cannot checkpoint anything on this machine's kernel: `criu check` fails in its
 * vDSO detection ("Unexpected rt vDSO area bounds"). The first test pins that the stock shim
 * fails the same way, and that ours hands runc's CRIU failure through the same way and leaves
 * the task running, both for `ctr t checkpoint --image-path` and `ctr c checkpoint --task`.
 * Restore (Create with a checkpoint, then `runtime restore` at Start) therefore has no image
 * to restore here; its refusal without CRIU is tested below.
 *
 * Without CRIU (CriuPath naming a missing binary) Checkpoint and a Create with a checkpoint
 * fail with FailedPrecondition and a message that says what is missing, before runc runs.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OptionsSchema as RuncOptionsSchema } from '../../src/api/gen/containerd/runc/v1/oci_pb.ts';
import { Task } from '../../src/api/gen/containerd/task/v2/shim_pb.ts';
import { packAny } from '../../src/api/typeurl.ts';
import { TtrpcClient } from '../../src/ttrpc/client.ts';
import { Code } from '../../src/ttrpc/status.ts';
import { serviceClient } from '../../src/ttrpc/typed.ts';
import { type PrivateContainerd, uniqueId, useContainerd } from './harness.ts';
import { OUTRIGGER, RUNC_V2, expectNoShimLeftovers, pinnedShimBinDir, taskStatus, useTestImage, waitFor } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });

async function remove(c: PrivateContainerd, id: string): Promise<void> {
  await c.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
  await waitFor('the task to stop', async () => ((await taskStatus(c, id)) === 'STOPPED' ? true : undefined));
  await c.ctr(['tasks', 'delete', id], { check: true });
  await c.ctr(['containers', 'rm', id], { check: true });
}

function criuCanCheckpoint(): { ok: boolean; why: string } {
  try {
    execFileSync('criu', ['check'], { stdio: 'pipe' });
    return { ok: true, why: '' };
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '');
    return { ok: false, why: stderr.trim().split('\n')[0] ?? '' };
  }
}

async function checkpointAttempt(runtime: string): Promise<{ task: number; container: number; taskErr: string; after: string | undefined }> {
  const c = ctd();
  const id = uniqueId('cp');
  await c.run({ image: image().name, id, runtime, detach: true, args: ['sleep', '1000'] });
  const imagePath = path.join(c.dir, `${id}-image`);
  const task = await c.ctr(['tasks', 'checkpoint', '--image-path', imagePath, id]);
  const container = await c.ctr(['containers', 'checkpoint', '--task', id, `checkpoint/${id}:1`]);
  const after = await taskStatus(c, id);
  await remove(c, id);
  return { task: task.exitCode, container: container.exitCode, taskErr: task.stderr, after };
}

describe('checkpoint compared with io.containerd.runc.v2', () => {
  it('imports the test image', async () => {
    await ctd().importImage(image().file);
  });

  it('CRIU cannot checkpoint on this kernel: both shims report runc’s CRIU failure and keep the task running', async () => {
    const criu = criuCanCheckpoint();
    expect(criu, 'criu check passes here now: turn this into a checkpoint/restore round trip').toMatchObject({ ok: false });
    expect(criu.why).toMatch(/vdso/i);
    const ours = await checkpointAttempt(OUTRIGGER);
    const stock = await checkpointAttempt(RUNC_V2);
    expect(stock).toMatchObject({ after: 'RUNNING' });
    expect(stock.task).not.toBe(0);
    expect(stock.container).not.toBe(0);
    expect(ours.task).not.toBe(0);
    expect(ours.container).not.toBe(0);
    expect(ours.after).toBe('RUNNING');
    // runc's own words about CRIU reach ctr through both shims, ours with the dump log's place.
    expect(ours.taskErr).toMatch(/checkpoint failed: criu failed: type DUMP/i);
    expect(stock.taskErr).toMatch(/criu failed: type DUMP/i);
    expect(ours.taskErr).toMatch(/CRIU log: .*criu-dump\.log/);
  });

  it('without CRIU: Checkpoint and Create with a checkpoint fail with FailedPrecondition naming the missing binary', async () => {
    const c = ctd();
    const config = path.join(c.dir, 'no-criu.toml');
    fs.writeFileSync(config, 'CriuPath = "/nonexistent/criu"\n');
    const id = uniqueId('nocriu');
    await c.run({ image: image().name, id, runtime: OUTRIGGER, detach: true, flags: ['--runtime-config-path', config], args: ['sleep', '1000'] });
    const r = await c.ctr(['tasks', 'checkpoint', '--image-path', path.join(c.dir, `${id}-image`), id]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/checkpoint .*: criu not found: CriuPath \/nonexistent\/criu is not an executable file .*: failed precondition/);
    expect(await taskStatus(c, id)).toBe('RUNNING');

    // Create with a checkpoint (what `ctr c restore --live` sends), straight to this running
    // shim, with runc Options naming the missing CRIU: refused before any bundle work.
    const address = fs.readFileSync(path.join(c.paths.state, 'io.containerd.runtime.v2.task', c.namespace, id, 'address'), 'utf8');
    const client = await TtrpcClient.connect(address);
    try {
      const restoreId = uniqueId('restore');
      await expect(
        serviceClient(client, Task).create({
          id: restoreId,
          bundle: path.join(c.dir, 'no-such-bundle'),
          checkpoint: path.join(c.dir, 'no-such-image'),
          options: packAny(RuncOptionsSchema, { criuPath: '/nonexistent/criu' }),
        }),
      ).rejects.toMatchObject({ code: Code.FailedPrecondition, message: expect.stringMatching(/^create .*: criu not found: CriuPath \/nonexistent\/criu/) as unknown });
    } finally {
      await client.close();
    }
    await remove(c, id);
  });

  it('leaves no shim, mount, socket or runc entry behind', async () => {
    await expectNoShimLeftovers(ctd());
  });
});
