/**
 * What the shim daemon loads after it serves (docs/shim-grouping.md, "Latency"): the logger holds
 * lines until pino is in and then writes them in order with the time they were logged; work
 * deferred to a runtime run happens once, after the runtime process started.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ShimLogFifo, openShimLogFifo } from '../shims/outrigger-v2/log.ts';
import { runtimeStarted, whileRuntimeRuns } from '../shims/outrigger-v2/runtime/child-wait-hook.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shim-log-'));
  // A regular file stands in for containerd's FIFO: the logger only opens and writes it.
  fs.writeFileSync(path.join(dir, 'log'), '');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function lines(): Record<string, unknown>[] {
  return fs
    .readFileSync(path.join(dir, 'log'), 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('ShimLog', () => {
  it('writes nothing before pino is in, then every held line in order with its own time', async () => {
    const { log, fifo } = openShimLogFifo(dir, { debug: false, namespace: 'ns1', id: 'task1' });
    expect(fifo).toBeInstanceOf(ShimLogFifo);
    const before = Date.now();
    log.info({ socket: '/s' }, 'shim listening');
    log.debug('dropped: not -debug');
    await sleep(30);
    log.warn({ err: new Error('boom') }, 'held warning');
    expect(fs.readFileSync(path.join(dir, 'log'), 'utf8')).toBe('');
    const loadedAt = Date.now();
    await log.load();
    log.error('after load');
    const out = lines();
    expect(out.map((l) => l.msg)).toEqual(['shim listening', 'held warning', 'after load']);
    expect(out.map((l) => l.level)).toEqual([30, 40, 50]);
    for (const l of out) expect(l).toMatchObject({ pid: process.pid, namespace: 'ns1', shim: 'task1' });
    expect(out[0]).toMatchObject({ socket: '/s' });
    expect((out[1]!.err as { message: string }).message).toBe('boom');
    const t0 = Date.parse(out[0]!.time as string);
    const t1 = Date.parse(out[1]!.time as string);
    expect(t0).toBeGreaterThanOrEqual(before - 1);
    expect(t0).toBeLessThan(loadedAt);
    expect(t1 - t0).toBeGreaterThanOrEqual(25);
    expect(out[2]!.time as string).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('keeps debug lines with -debug, and runs whenWritten only once the held lines are out', async () => {
    const { log } = openShimLogFifo(dir, { debug: true, namespace: 'ns1', id: 'task1' });
    log.debug({ connections: 2 }, 'handed over');
    let seen: unknown[] | undefined;
    log.whenWritten(() => {
      seen = lines().map((l) => l.msg);
    });
    expect(seen).toBeUndefined();
    await log.load();
    await sleep(0);
    expect(seen).toEqual(['handed over']);
    let immediate = false;
    log.whenWritten(() => {
      immediate = true;
    });
    expect(immediate).toBe(true);
  });
});

describe('whileRuntimeRuns', () => {
  it('runs deferred work once, after the next runtime process started', async () => {
    let runs = 0;
    whileRuntimeRuns(() => runs++);
    await sleep(5);
    expect(runs).toBe(0);
    runtimeStarted();
    expect(runs).toBe(0); // after the current turn, while the caller waits
    await new Promise((resolve) => setImmediate(resolve));
    expect(runs).toBe(1);
    runtimeStarted();
    await new Promise((resolve) => setImmediate(resolve));
    expect(runs).toBe(1);
  });
});
