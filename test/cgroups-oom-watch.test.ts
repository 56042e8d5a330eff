/**
 * OOM watches (shims/outrigger-v2/cgroups/oom-watch.ts): on this cgroup v1 host, a real memory
 * cgroup with an 8 MB limit, a real process that fills memory, and the kernel's eventfd
 * notification through cgroup.event_control; the v2 watch on a memory.events file (the
 * kernel's format) whose oom_kill counter goes up. Each OOM is reported once.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hostCgroupMode } from '../shims/outrigger-v2/cgroups/host-mode.ts';
import { watchOom } from '../shims/outrigger-v2/cgroups/oom-watch.ts';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

describe('OOM watch', () => {
  it('cgroup v1: the eventfd reports the OOM kill of a process in the cgroup once', async () => {
    expect(hostCgroupMode()).not.toBe('unified'); // this machine; the v2 case is below
    const dir = `/sys/fs/cgroup/memory/outrigger-oom-test-${process.pid}`;
    fs.mkdirSync(dir);
    cleanups.push(() => fs.rmdirSync(dir));
    fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(8 * 1024 * 1024));
    let reported = 0;
    const watch = watchOom({ version: 1, dirs: new Map([['memory', dir]]) }, () => reported++);
    expect(watch).toBeDefined();
    cleanups.push(() => watch!.close());
    expect(watch!.check()).toBe(false);
    // Joins the cgroup, then becomes tail on a line that never ends.
    const child = spawn('sh', ['-c', `echo $$ > ${dir}/cgroup.procs && exec tail /dev/zero`], { stdio: 'ignore' });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, sig) => resolve(sig)));
    expect(signal).toBe('SIGKILL');
    watch!.check();
    expect(reported).toBe(1);
    expect(watch!.check()).toBe(false);
    expect(reported).toBe(1);
  });

  it('cgroup v2: a rise of memory.events oom_kill is reported once per rise', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oom-v2-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const events = (kills: number) => fs.writeFileSync(path.join(dir, 'memory.events'), `low 0\nhigh 0\nmax 4\noom 2\noom_kill ${kills}\noom_group_kill 0\n`);
    events(1); // kills before the watch started are not news
    let reported = 0;
    const watch = watchOom({ version: 2, dir }, () => reported++);
    cleanups.push(() => watch!.close());
    expect(watch!.check()).toBe(false);
    events(3);
    watch!.check();
    expect(reported).toBe(1);
    expect(watch!.check()).toBe(false);
    events(4);
    watch!.check();
    expect(reported).toBe(2);
  });

  it('no memory controller, nothing to watch', () => {
    expect(watchOom({ version: 1, dirs: new Map([['pids', '/sys/fs/cgroup/pids']]) }, () => undefined)).toBeUndefined();
    expect(watchOom({ version: 2, dir: os.tmpdir() }, () => undefined)).toBeUndefined();
  });
});
