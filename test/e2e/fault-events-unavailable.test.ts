/**
 * containerd's events service unavailable for 30 s: containerd is frozen with SIGSTOP (its
 * sockets still accept connections, nothing answers) while two tasks and an exec under
 * containerd-shim-outrigger-v2 exit. After SIGCONT every exit event arrives, in the order the
 * processes exited (per shim: an exec's exit before its init's), each exactly once, with the
 * right status; the tasks are STOPPED and delete reports the same exit codes.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { type PrivateContainerd, startContainerd, uniqueId } from './harness.ts';
import { OUTRIGGER, pinnedShimBinDir, shimFor, taskStatus, useTestImage, waitFor } from './shim-support.ts';

const image = useTestImage();
const binDir = pinnedShimBinDir();
const FROZEN_MS = 30_000;

function watchEvents(c: PrivateContainerd): { lines: () => string[]; stop: () => void } {
  const child = spawn('/usr/bin/ctr', ['--address', c.address, '--namespace', c.namespace, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  return { lines: () => text.split('\n').filter(Boolean), stop: () => child.kill('SIGKILL') };
}

describe('events service unavailable for 30 s', () => {
  it('exits that happen meanwhile are delivered afterwards, in order, once each', async () => {
    const ctd = await startContainerd({ binDirs: [binDir] });
    await ctd.importImage(image().file);
    const events = watchEvents(ctd);
    try {
      await waitFor('ctr events to subscribe', async () => {
        const probe = uniqueId('probe');
        await ctd.ctr(['containers', 'create', image().name, probe], { check: true });
        await ctd.ctr(['containers', 'rm', probe], { check: true });
        await sleep(50);
        return events.lines().some((l) => l.includes(probe)) ? true : undefined;
      });
      const a = uniqueId('evA');
      const b = uniqueId('evB');
      // The exits are paced by a file the test creates once containerd is frozen, so all of them
      // happen while nobody answers, in a known order: exec e1, then A, then B.
      await ctd.run({ image: image().name, id: a, runtime: OUTRIGGER, detach: true, args: ['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.1; done; sleep 2; exit 7'] });
      await ctd.run({ image: image().name, id: b, runtime: OUTRIGGER, detach: true, args: ['sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.1; done; sleep 4; exit 9'] });
      await ctd.ctr(['tasks', 'exec', '-d', '--exec-id', 'e1', a, 'sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 5'], { check: true });
      const bundles = [a, b].map((id) => shimFor(ctd, id)?.cwd);
      expect(bundles.every((d) => d !== undefined)).toBe(true);
      const exitLines = () => events.lines().filter((l) => l.includes('/tasks/exit'));

      process.kill(ctd.pid!, 'SIGSTOP');
      try {
        // The processes run without containerd: start the exits through each rootfs from outside.
        for (const bundle of bundles) fs.writeFileSync(path.join(bundle!, 'rootfs/tmp/go'), '');
        await sleep(FROZEN_MS);
      } finally {
        process.kill(ctd.pid!, 'SIGCONT');
      }

      const ours = (l: string) => l.includes(`"container_id":"${a}"`) || l.includes(`"container_id":"${b}"`);
      await waitFor('three exit events', () => (exitLines().filter(ours).length >= 3 ? true : undefined), 60_000);
      // Anything still in flight (a duplicate would be) has arrived by now.
      await sleep(3_000);
      const exits = exitLines()
        .filter(ours)
        .map((l) => ({ id: /"id":"([^"]+)"/.exec(l)?.[1], status: Number(/"exit_status":(\d+)/.exec(l)?.[1] ?? 0) }));
      // Each exit exactly once (a resend of a request containerd had buffered would show twice).
      // Order is a per-shim promise: A's exec before A's init. A and B have separate shims.
      expect(exits.filter((e) => e.id === 'e1' || e.id === a)).toEqual([
        { id: 'e1', status: 5 },
        { id: a, status: 7 },
      ]);
      expect(exits.filter((e) => e.id === b)).toEqual([{ id: b, status: 9 }]);
      expect(await taskStatus(ctd, a)).toBe('STOPPED');
      expect(await taskStatus(ctd, b)).toBe('STOPPED');
      for (const [id, code] of [[a, 7], [b, 9]] as const) {
        const del = await ctd.ctr(['tasks', 'delete', id]);
        expect(del.exitCode, del.stderr).toBe(0);
        expect(del.stderr).toMatch(new RegExp(`exit code ${code}`));
        await ctd.ctr(['containers', 'rm', id], { check: true });
      }
    } finally {
      events.stop();
    }
  });
});
