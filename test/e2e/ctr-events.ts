/**
 * `ctr events` in the background, for tests that assert which task events a scenario
 * publishes and in which order (the same technique as shim-events.test.ts).
 */
import { spawn } from 'node:child_process';
import { SYSTEM_CTR } from '../../scripts/dev-containerd/private-containerd.ts';
import { type PrivateContainerd, uniqueId } from './harness.ts';
import { waitFor } from './shim-support.ts';

export interface EventWatch {
  lines(): string[];
  /** Topics of the /tasks/ events naming container `id`, in arrival order. */
  taskTopics(id: string): string[];
  stop(): void;
}

/** Starts `ctr events` and returns once it provably receives events (a probe container's). */
export async function watchEvents(c: PrivateContainerd, image: string): Promise<EventWatch> {
  const child = spawn(SYSTEM_CTR, ['--address', c.address, '--namespace', c.namespace, 'events'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  const lines = () => text.split('\n').filter(Boolean);
  const watch: EventWatch = {
    lines,
    taskTopics: (id) =>
      lines()
        .filter((l) => l.includes(`"container_id":"${id}"`))
        .map((l) => /\s(\/tasks\/[a-z-]+)\s/.exec(l)?.[1])
        .filter((t): t is string => t !== undefined),
    stop: () => child.kill('SIGKILL'),
  };
  try {
    await waitFor('ctr events to subscribe', async () => {
      const probe = uniqueId('probe');
      await c.ctr(['containers', 'create', image, probe], { check: true });
      await c.ctr(['containers', 'rm', probe], { check: true });
      await new Promise((r) => setTimeout(r, 50));
      return lines().some((l) => l.includes(probe)) ? true : undefined;
    });
  } catch (err) {
    watch.stop();
    throw err;
  }
  return watch;
}
