/**
 * The shim's event queue: items leave in push order even when sends fail and are retried, a
 * full queue refuses new items without blocking, an item failing permanently is dropped and
 * the rest still go out, and an item that keeps failing is given up after the deadline.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OrderedQueue } from '../shims/outrigger-v2/events/ordered-queue.ts';

const noSleep = () => Promise.resolve();

describe('OrderedQueue', () => {
  it('delivers in push order whatever fails transiently (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat({ max: 3 }), { minLength: 1, maxLength: 40 }), async (failuresPerItem) => {
        const delivered: number[] = [];
        const remaining = new Map(failuresPerItem.map((f, i) => [i, f]));
        const q = new OrderedQueue<number>({
          sleep: noSleep,
          send: async (item) => {
            await Promise.resolve();
            const left = remaining.get(item) ?? 0;
            if (left > 0) {
              remaining.set(item, left - 1);
              return { ok: false, error: new Error('connection refused') };
            }
            delivered.push(item);
            return { ok: true };
          },
        });
        // pushes interleaved with sends in flight
        for (let i = 0; i < failuresPerItem.length; i++) {
          q.push(i);
          if (i % 3 === 0) await Promise.resolve();
        }
        expect(await q.idle(5_000)).toBe(true);
        expect(delivered).toEqual(failuresPerItem.map((_, i) => i));
      }),
    );
  });

  it('never blocks push: a full queue refuses and counts', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const dropped: string[] = [];
    const q = new OrderedQueue<string>({
      capacity: 2,
      send: async () => {
        await gate;
        return { ok: true };
      },
      onDrop: (item, reason) => dropped.push(`${item}: ${reason}`),
    });
    expect(q.push('a')).toBe(true);
    expect(q.push('b')).toBe(true);
    expect(q.push('c')).toBe(false);
    expect(q.refused).toBe(1);
    expect(dropped).toEqual(['c: queue full (2)']);
    release();
    expect(await q.idle(1_000)).toBe(true);
    expect(q.length).toBe(0);
  });

  it('drops a permanently rejected item and goes on; gives up on one failing past the deadline', async () => {
    let clock = 0;
    const sent: string[] = [];
    const dropped: string[] = [];
    const q = new OrderedQueue<string>({
      giveUpAfterMs: 1_000,
      now: () => clock,
      sleep: async (ms) => {
        clock += ms;
      },
      send: async (item) => {
        if (item === 'bad') return { ok: false, permanent: true };
        if (item === 'down') return { ok: false };
        sent.push(item);
        return { ok: true };
      },
      onDrop: (item, reason) => dropped.push(`${item}: ${reason}`),
    });
    for (const i of ['a', 'bad', 'b', 'down', 'c']) q.push(i);
    expect(await q.idle(1_000)).toBe(true);
    expect(sent).toEqual(['a', 'b', 'c']);
    expect(dropped).toEqual(['bad: rejected', 'down: still failing after 1000 ms']);
  });
});
