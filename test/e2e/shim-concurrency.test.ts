/**
 * Load through containerd-shim-outrigger-v2: 50 `ctr run --rm` at once, each with its own
 * output and exit code; and 50 execs in one container that exit at the same moment. Every exit
 * code arrives where it belongs, the shim keeps no zombie, and afterwards no shim, mount,
 * socket, runc entry or FIFO is left.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { uniqueId, useContainerd } from './harness.ts';
import { OUTRIGGER, outriggerShims, shimFor, taskStatus, useTestImage, pinnedShimBinDir, waitFor, zombieChildren } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });
const N = 50;

function fifosLeft(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /-std(in|out|err)$/.test(f));
}

describe(`${N} at once`, () => {
  it(`${N} concurrent ctr run --rm: every output and exit code right, nothing left`, async () => {
    await ctd().importImage(image().file);
    const runs = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        ctd().run({ image: image().name, runtime: OUTRIGGER, args: ['sh', '-c', `echo out-${i}; echo err-${i} >&2; exit ${i + 1}`], timeoutMs: 240_000 }),
      ),
    );
    for (const [i, r] of runs.entries()) {
      expect({ i, stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode, timedOut: r.timedOut }).toEqual({
        i,
        stdout: `out-${i}\n`,
        stderr: `err-${i}\n`,
        exitCode: i + 1,
        timedOut: false,
      });
    }
    await waitFor('every shim to exit', () => (outriggerShims(ctd()).length === 0 ? true : undefined), 60_000);
    const left = ctd().leftovers();
    expect(left.mounts).toEqual([]);
    expect(left.sockets).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
    expect(fifosLeft(ctd().fifoDir)).toEqual([]);
  });

  it(`${N} execs in one container exiting at once: each Wait gets its own code, no zombie`, async () => {
    const id = uniqueId('execs');
    await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, args: ['sleep', '1000'] });
    const shim = shimFor(ctd(), id);
    expect(shim).toBeDefined();
    // All wait for the same file, so they end together.
    const execs = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        ctd().ctr(['tasks', 'exec', '--exec-id', `x${i}`, id, 'sh', '-c', `while [ ! -e /tmp/go ]; do sleep 0.05; done; exit ${(i % 200) + 3}`], {
          timeoutMs: 240_000,
        }),
      ).concat([
        (async () => {
          await waitFor('all execs to run', async () => {
            const ps = await ctd().ctr(['tasks', 'ps', id], { check: true });
            return (ps.stdout.match(/ExecID:x\d+/g) ?? []).length === N ? true : undefined;
          }, 120_000);
          return ctd().ctr(['tasks', 'exec', '--exec-id', 'go', id, 'sh', '-c', ': > /tmp/go'], { check: true });
        })(),
      ]),
    );
    for (let i = 0; i < N; i++) expect({ i, code: execs[i]!.exitCode }).toEqual({ i, code: (i % 200) + 3 });
    expect(zombieChildren(shim!.pid)).toEqual([]);

    // Execs that are gone before `runc exec` has even returned their pid: none may be lost.
    const quick = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ctd().ctr(['tasks', 'exec', '--exec-id', `q${i}`, id, 'sh', '-c', `exit ${i + 100}`], { timeoutMs: 120_000 })),
    );
    expect(quick.map((r) => r.exitCode)).toEqual(Array.from({ length: 20 }, (_, i) => i + 100));
    expect(zombieChildren(shim!.pid)).toEqual([]);
    expect(await taskStatus(ctd(), id)).toBe('RUNNING');
    await ctd().ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
    await waitFor('the task to stop', async () => ((await taskStatus(ctd(), id)) === 'STOPPED' ? true : undefined));
    await ctd().ctr(['tasks', 'delete', id], { check: true });
    await ctd().ctr(['containers', 'rm', id], { check: true });
    await waitFor('the shim to exit', () => (shimFor(ctd(), id) === undefined ? true : undefined), 30_000);
    expect(fifosLeft(ctd().fifoDir)).toEqual([]);
  });
});
