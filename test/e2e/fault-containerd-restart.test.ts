/**
 * containerd killed with SIGKILL and restarted while 20 containers run under
 * containerd-shim-outrigger-v2 (TestDaemonRestart's scenario, at scale): afterwards every task
 * is still listed RUNNING with the same pid and the same shim, exec works in every one of them
 * with its own output and exit code, kill stops every one with 137, delete and container
 * removal leave nothing behind (harness leftovers check at teardown).
 */
import { describe, expect, it } from 'vitest';
import { pidAlive, startContainerd, uniqueId } from './harness.ts';
import { OUTRIGGER, pinnedShimBinDir, shimFor, useTestImage, waitFor, zombieChildren } from './shim-support.ts';

const image = useTestImage();
const binDir = pinnedShimBinDir();
const N = 20;

function taskTable(stdout: string): Map<string, { pid: number; status: string }> {
  const out = new Map<string, { pid: number; status: string }>();
  for (const line of stdout.split('\n').slice(1)) {
    const [id, pid, status] = line.trim().split(/\s+/);
    if (id) out.set(id, { pid: Number(pid), status: status ?? '' });
  }
  return out;
}

describe('containerd SIGKILL with 20 running containers', () => {
  it('every task stays managed: listed, exec, kill, delete', async () => {
    const ctd = await startContainerd({ binDirs: [binDir] });
    await ctd.importImage(image().file);
    const ids = Array.from({ length: N }, () => uniqueId('k9ctd'));
    // A few at a time: 20 SEA start-ups at once on 2 loaded cores only measures the machine.
    for (let i = 0; i < N; i += 5) {
      const started = await Promise.all(
        ids.slice(i, i + 5).map((id) => ctd.run({ image: image().name, id, runtime: OUTRIGGER, detach: true, args: ['sleep', '1000'], timeoutMs: 120_000 })),
      );
      for (const r of started) expect(r.exitCode, `${r.id}: ${r.stderr}`).toBe(0);
    }
    const before = taskTable((await ctd.ctr(['tasks', 'ls'], { check: true })).stdout);
    const shims = new Map(ids.map((id) => [id, shimFor(ctd, id)?.pid]));
    for (const id of ids) {
      expect(before.get(id)?.status).toBe('RUNNING');
      expect(shims.get(id)).toBeDefined();
    }

    await ctd.restart('SIGKILL');

    const after = taskTable((await ctd.ctr(['tasks', 'ls'], { check: true, timeoutMs: 120_000 })).stdout);
    for (const id of ids) {
      expect({ id, ...after.get(id) }).toEqual({ id, pid: before.get(id)!.pid, status: 'RUNNING' });
      expect(shimFor(ctd, id)?.pid).toBe(shims.get(id));
      expect(pidAlive(before.get(id)!.pid)).toBe(true);
    }
    for (let i = 0; i < N; i += 5) {
      const execs = await Promise.all(
        ids.slice(i, i + 5).map((id, k) => ctd.ctr(['tasks', 'exec', '--exec-id', 'after', id, 'sh', '-c', `echo ${id}; exit ${i + k + 1}`], { timeoutMs: 120_000 })),
      );
      execs.forEach((r, k) => expect({ out: r.stdout, code: r.exitCode }).toEqual({ out: `${ids[i + k]}\n`, code: i + k + 1 }));
    }
    for (const id of ids) await ctd.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
    await waitFor(
      'every task to stop',
      async () => {
        const t = taskTable((await ctd.ctr(['tasks', 'ls'], { check: true })).stdout);
        return ids.every((id) => t.get(id)?.status === 'STOPPED') ? true : undefined;
      },
      120_000,
    );
    for (const id of ids) {
      const shim = shims.get(id)!;
      expect(zombieChildren(shim)).toEqual([]);
      const del = await ctd.ctr(['tasks', 'delete', id], { timeoutMs: 60_000 });
      expect(del.exitCode, del.stderr).toBe(0);
      expect(del.stderr).toMatch(/exit code 137/);
      await ctd.ctr(['containers', 'rm', id], { check: true });
    }
    await waitFor('every shim to exit', () => (ids.every((id) => shimFor(ctd, id) === undefined) ? true : undefined), 60_000);
    const left = ctd.leftovers();
    expect(left.mounts).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
    expect(left.sockets).toEqual([]);
  });
});
