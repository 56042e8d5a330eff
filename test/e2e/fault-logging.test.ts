/**
 * Faults around container logs under containerd-shim-outrigger-v2:
 * - file:// log across a containerd SIGKILL and restart: the shim writes the file itself, so
 *   every numbered line the container printed is there exactly once, in order;
 * - binary:// logger killed while the container runs: the container does not block on a full
 *   pipe (it goes on counting well past a pipe's capacity), exec still works, the shim says in
 *   its log that output now goes to the fallback file;
 * - file:// log on a full 1 MiB tmpfs: the container keeps running and exec works, and the
 *   write failure is logged once, not once per write.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { startContainerd, uniqueId } from './harness.ts';
import type { PrivateContainerd } from './harness.ts';
import { OUTRIGGER, pinnedShimBinDir, taskStatus, useTestImage, waitFor } from './shim-support.ts';

const image = useTestImage();
const binDir = pinnedShimBinDir();

async function stopAndRemove(ctd: PrivateContainerd, id: string): Promise<void> {
  await ctd.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
  await waitFor('the task to stop', async () => ((await taskStatus(ctd, id)) === 'STOPPED' ? true : undefined));
  await ctd.ctr(['tasks', 'delete', id], { check: true });
  await ctd.ctr(['containers', 'rm', id], { check: true });
}

function processTable(): { pid: number; ppid: number; argv: string[] }[] {
  const out: { pid: number; ppid: number; argv: string[] }[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.push({ pid: Number(entry), ppid, argv: fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean) });
    } catch {
      // gone
    }
  }
  return out;
}

/** The counter the container's loop keeps in /tmp/n. */
async function counter(ctd: PrivateContainerd, id: string, execId: string): Promise<number> {
  const r = await ctd.ctr(['tasks', 'exec', '--exec-id', execId, id, 'cat', '/tmp/n'], { check: true });
  return Number(r.stdout.trim());
}

describe('container logs under faults', () => {
  it('file:// log: no line lost or doubled across a containerd SIGKILL and restart', async () => {
    const ctd = await startContainerd({ binDirs: [binDir] });
    await ctd.importImage(image().file);
    const id = uniqueId('logrst');
    const log = path.join(ctd.dir, 'logs', `${id}.log`);
    fs.mkdirSync(path.dirname(log), { recursive: true });
    const lines = 3000;
    await ctd.ctr(
      ['run', '-d', '--runtime', OUTRIGGER, '--log-uri', `file://${log}`, image().name, id, 'sh', '-c', `i=0; while [ $i -lt ${lines} ]; do echo line-$i; i=$((i+1)); [ $((i % 25)) -eq 0 ] && sleep 0.05; done; sleep 1000`],
      { check: true },
    );
    await waitFor('the first lines', () => (fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('line-100\n') ? true : undefined));
    // The restart happens while the container is still writing (about 6 s of output in all).
    expect(fs.readFileSync(log, 'utf8')).not.toContain(`line-${lines - 1}\n`);
    await ctd.restart('SIGKILL');
    await waitFor('the last line', () => (fs.readFileSync(log, 'utf8').includes(`line-${lines - 1}\n`) ? true : undefined), 60_000);
    expect(fs.readFileSync(log, 'utf8')).toBe(Array.from({ length: lines }, (_, i) => `line-${i}\n`).join(''));
    await stopAndRemove(ctd, id);
  });

  it('binary:// logger killed: the container keeps running and its output goes to the fallback', async () => {
    const ctd = await startContainerd({ binDirs: [binDir] });
    await ctd.importImage(image().file);
    const id = uniqueId('logkill');
    const logger = path.join(ctd.dir, 'test-logger');
    const out = path.join(ctd.dir, 'logger.out');
    // containerd's binary logger contract: stdout on fd 3, stderr on fd 4, close fd 5 when ready.
    fs.writeFileSync(logger, `#!/bin/sh\nexec 5>&-\ncat <&4 >/dev/null &\ncat <&3 >> ${out}\nwait\n`, { mode: 0o755 });
    // 1 KiB per line, far more than a 64 KiB pipe holds once nobody reads it.
    const script = 'n=0; while true; do head -c 1000 /dev/zero | tr "\\0" x; echo; n=$((n+1)); echo $n > /tmp/n.tmp; mv /tmp/n.tmp /tmp/n; sleep 0.002; done';
    await ctd.ctr(['run', '-d', '--runtime', OUTRIGGER, '--log-uri', `binary://${logger}`, image().name, id, 'sh', '-c', script], { check: true });
    await waitFor('the logger to receive output', () => (fs.existsSync(out) && fs.statSync(out).size > 10_000 ? true : undefined));
    // The logger is the shell running this test's own script (unique path) and its two cats.
    const shells = processTable().filter((p) => p.argv.includes(logger));
    expect(shells.length).toBe(1);
    const victims = [shells[0]!.pid, ...processTable().filter((p) => p.ppid === shells[0]!.pid).map((p) => p.pid)];
    for (const pid of victims) process.kill(pid, 'SIGKILL');
    const at = await counter(ctd, id, 'c1');
    // 300 more lines is 300 KiB: with nobody draining the pipes the container would have stalled.
    await waitFor('the container to keep writing', async () => ((await counter(ctd, id, `c${Date.now()}`)) > at + 300 ? true : undefined), 60_000);
    expect(await taskStatus(ctd, id)).toBe('RUNNING');
    await waitFor('the fallback warning in the shim log', () => (fs.readFileSync(ctd.logFile, 'utf8').includes('fallback file') ? true : undefined));
    await stopAndRemove(ctd, id);
  });

  it('file:// log on a full 1 MiB tmpfs: the container keeps running, the failure is logged once', async () => {
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'full-tmpfs-'));
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    try {
      const ctd = await startContainerd({ binDirs: [binDir] });
      await ctd.importImage(image().file);
      const id = uniqueId('logfull');
      const log = path.join(mnt, `${id}.log`);
      // About 3 MiB of output into a 1 MiB file system, then a counter that shows it still runs.
      const script = 'n=0; while [ $n -lt 3000 ]; do head -c 1000 /dev/zero | tr "\\0" y; echo; n=$((n+1)); done; echo $n > /tmp/n; sleep 1000';
      await ctd.ctr(['run', '-d', '--runtime', OUTRIGGER, '--log-uri', `file://${log}`, image().name, id, 'sh', '-c', script], { check: true });
      await waitFor('the writer to finish', async () => {
        const r = await ctd.ctr(['tasks', 'exec', '--exec-id', `n${Date.now()}`, id, 'cat', '/tmp/n']);
        return r.stdout.trim() === '3000' ? true : undefined;
      }, 60_000);
      expect(await taskStatus(ctd, id)).toBe('RUNNING');
      const exec = await ctd.ctr(['tasks', 'exec', '--exec-id', 'alive', id, 'sh', '-c', 'echo alive; exit 3']);
      expect(exec.stdout).toBe('alive\n');
      expect(exec.exitCode).toBe(3);
      expect(fs.statSync(log).size).toBeLessThanOrEqual(1024 * 1024);
      await sleep(500);
      const failures = fs
        .readFileSync(ctd.logFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes(id) && /writing container output failed/.test(l));
      expect(failures, 'the write failure is logged exactly once').toHaveLength(1);
      expect(failures[0]).toMatch(/ENOSPC/);
      await stopAndRemove(ctd, id);
      await ctd.stop();
    } finally {
      await execa('umount', [mnt], { reject: false });
      fs.rmSync(mnt, { recursive: true, force: true });
    }
  });
});
