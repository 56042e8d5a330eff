/**
 * `ctr events` sees the same topic sequence from containerd-shim-outrigger-v2 as from the stock
 * io.containerd.runc.v2 shim for the same scenario: run --rm with an exit code, then a detached
 * task with an attached exec, kill, delete and container removal. Both runtimes run in the
 * same private containerd, one after the other.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { type PrivateContainerd, uniqueId, useContainerd } from './harness.ts';
import { OUTRIGGER, RUNC_V2, taskStatus, useTestImage, pinnedShimBinDir, waitFor } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });

/** `ctr events` in the background; returns the lines seen so far and a stop function. */
function watchEvents(c: PrivateContainerd): { lines: () => string[]; stop: () => void } {
  const child = spawn('/usr/bin/ctr', ['--address', c.address, '--namespace', c.namespace, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  return { lines: () => text.split('\n').filter(Boolean), stop: () => child.kill('SIGKILL') };
}

/** Returns once `ctr events` sees events: an event of our own proves the subscription is live. */
async function subscribed(events: { lines: () => string[] }): Promise<void> {
  await waitFor('ctr events to subscribe', async () => {
    const probe = uniqueId('probe');
    await ctd().ctr(['containers', 'create', image().name, probe], { check: true });
    await ctd().ctr(['containers', 'rm', probe], { check: true });
    await new Promise((r) => setTimeout(r, 50));
    return events.lines().some((l) => l.includes(probe)) ? true : undefined;
  });
}

function topicsFor(lines: readonly string[], id: string): string[] {
  // Snapshot events come from containerd itself, whatever the runtime; tasks and containers are the subject.
  return lines
    .filter((l) => l.includes(`"${id}"`))
    .map((l) => /\s(\/[a-z-]+\/[a-z-]+)\s/.exec(l)?.[1] ?? `?${l}`)
    .filter((t) => t.startsWith('/tasks/') || t.startsWith('/containers/') || t.startsWith('?'));
}

async function scenario(c: PrivateContainerd, runtime: string, lines: () => string[]): Promise<{ run: string[]; detached: string[] }> {
  const runId = uniqueId('ev-run');
  const r = await c.run({ image: image().name, id: runId, runtime, args: ['sh', '-c', 'exit 3'] });
  expect(r.exitCode).toBe(3);
  await waitFor('the run to be fully deleted', () => (topicsFor(lines(), runId).includes('/containers/delete') ? true : undefined));

  const id = uniqueId('ev-det');
  await c.run({ image: image().name, id, runtime, detach: true, args: ['sleep', '1000'] });
  const exec = await c.ctr(['tasks', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'exit 2']);
  expect(exec.exitCode).toBe(2);
  await c.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
  await waitFor('the task to stop', async () => ((await taskStatus(c, id)) === 'STOPPED' ? true : undefined));
  await c.ctr(['tasks', 'delete', id], { check: true });
  await c.ctr(['containers', 'rm', id], { check: true });
  await waitFor('the container delete event', () => (topicsFor(lines(), id).includes('/containers/delete') ? true : undefined));
  return { run: topicsFor(lines(), runId), detached: topicsFor(lines(), id) };
}

describe('event sequence compared with io.containerd.runc.v2', () => {
  it('is the same topic sequence, in the order containerd requires', async () => {
    await ctd().importImage(image().file);
    const events = watchEvents(ctd());
    try {
      await subscribed(events);
      const runc = await scenario(ctd(), RUNC_V2, events.lines);
      const ours = await scenario(ctd(), OUTRIGGER, events.lines);
      expect(runc.run).toEqual(['/containers/create', '/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete', '/containers/delete']);
      expect(ours.run).toEqual(runc.run);
      expect(ours.detached).toEqual(runc.detached);
      expect(ours.detached).toEqual([
        '/containers/create',
        '/tasks/create',
        '/tasks/start',
        '/tasks/exec-added',
        '/tasks/exec-started',
        '/tasks/exit',
        '/tasks/exit',
        '/tasks/delete',
        '/containers/delete',
      ]);
    } finally {
      events.stop();
    }
  });

  it('an init killed under a running exec publishes its exit after the exec’s', async () => {
    const events = watchEvents(ctd());
    try {
      await subscribed(events);
      const id = uniqueId('ev-order');
      await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, args: ['sleep', '1000'] });
      await ctd().ctr(['tasks', 'exec', '-d', '--exec-id', 'bg', id, 'sleep', '1000'], { check: true });
      // SIGKILL to the init only; the kernel takes the exec down with the pid namespace.
      await ctd().ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
      await waitFor('the task to stop', async () => ((await taskStatus(ctd(), id)) === 'STOPPED' ? true : undefined));
      const exits = await waitFor('both exit events', () => {
        const found = events.lines().filter((l) => l.includes('/tasks/exit') && l.includes(`"container_id":"${id}"`));
        return found.length === 2 ? found : undefined;
      });
      expect(exits.map((l) => /"id":"([^"]+)"/.exec(l)?.[1])).toEqual(['bg', id]);
      expect(exits.every((l) => l.includes('"exit_status":137'))).toBe(true);
      await ctd().ctr(['tasks', 'delete', id], { check: true });
      await ctd().ctr(['containers', 'rm', id], { check: true });
    } finally {
      events.stop();
    }
  });
});
