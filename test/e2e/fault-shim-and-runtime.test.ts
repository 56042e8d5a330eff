/**
 * Faults below containerd, under containerd-shim-outrigger-v2:
 * - the shim killed with SIGKILL: containerd reports the task's exit (a /tasks/exit event with
 *   137), our `delete` removes the bundle and the rootfs mount, and once the container is
 *   removed the instance has nothing left (no process, mount, socket, runc entry, cgroup);
 * - the OCI runtime binary (BinaryName in a runtime options TOML) missing or always failing:
 *   create fails with an error that names the binary and its words, and nothing stays behind.
 * (The bundle directory removed under a running shim: fault-bundle-removed.test.ts.)
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { pidAlive, uniqueId, useContainerd } from './harness.ts';
import { OUTRIGGER, pinnedShimBinDir, shimFor, taskStatus, useTestImage, waitFor } from './shim-support.ts';

const image = useTestImage();
const ctd = useContainerd({ binDirs: [pinnedShimBinDir()] });

function taskPid(stdout: string, id: string): number {
  return Number(stdout.split('\n').find((l) => l.startsWith(id))?.trim().split(/\s+/)[1]);
}

function mounted(p: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === p);
}

function writeOptions(name: string, body: string): string {
  const file = path.join(ctd().dir, name);
  fs.writeFileSync(file, body);
  return file;
}

describe('faults under the shim', () => {
  it('shim SIGKILL: exit event with 137, bundle and mount gone, nothing left after removal', async () => {
    await ctd().importImage(image().file);
    const events = spawn('/usr/bin/ctr', ['--address', ctd().address, '--namespace', ctd().namespace, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let seen = '';
    events.stdout.setEncoding('utf8').on('data', (d: string) => (seen += d));
    try {
      await sleep(500);
      const id = uniqueId('k9');
      const r = await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, args: ['sleep', '1000'] });
      expect(r.exitCode, r.stderr).toBe(0);
      const shim = shimFor(ctd(), id)!;
      const bundle = shim.cwd!;
      const pid = taskPid((await ctd().ctr(['tasks', 'ls'], { check: true })).stdout, id);
      expect(mounted(path.join(bundle, 'rootfs'))).toBe(true);

      process.kill(shim.pid, 'SIGKILL');

      await waitFor('the exit event', () => (seen.split('\n').some((l) => l.includes('/tasks/exit') && l.includes(`"container_id":"${id}"`)) ? true : undefined), 60_000);
      const exit = seen.split('\n').find((l) => l.includes('/tasks/exit') && l.includes(`"container_id":"${id}"`))!;
      expect(exit).toMatch(/"exit_status":137/);
      await waitFor('containerd to drop the task', async () => ((await taskStatus(ctd(), id)) === undefined ? true : undefined));
      await waitFor('the container process to be gone', () => (pidAlive(pid) ? undefined : true));
      await waitFor('the bundle to be removed', () => (fs.existsSync(bundle) ? undefined : true));
      expect(mounted(path.join(bundle, 'rootfs'))).toBe(false);
      await ctd().ctr(['containers', 'rm', id], { check: true });
      const left = ctd().leftovers();
      expect(left.processes.filter((p) => p.cmdline.includes(id))).toEqual([]);
      expect(left.mounts).toEqual([]);
      expect(left.runtimeEntries).toEqual([]);
      // The namespace's parent cgroup (ctr's /<namespace>/<id> layout) outlives its containers
      // under every runtime; the container's own must be gone.
      expect(left.cgroups.filter((c) => c.includes(id))).toEqual([]);
    } finally {
      events.kill('SIGKILL');
    }
  });

  it('BinaryName missing: create fails naming the binary; nothing left', async () => {
    const missing = path.join(ctd().dir, 'no-such-runc');
    const config = writeOptions('missing.toml', `BinaryName = "${missing}"\n`);
    const r = await ctd().run({ image: image().name, runtime: OUTRIGGER, flags: ['--runtime-config-path', config], args: ['true'] });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(missing);
    expect(r.stderr).toMatch(/ENOENT|not found|no such file/i);
    await waitFor('the shim to exit', () => (shimFor(ctd(), r.id) === undefined ? true : undefined));
    await ctd().ctr(['containers', 'rm', r.id]);
    const left = ctd().leftovers();
    expect(left.mounts).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
  });

  it('BinaryName always failing: its message reaches ctr; nothing left', async () => {
    const failing = path.join(ctd().dir, 'failing-runc');
    fs.writeFileSync(failing, '#!/bin/sh\necho "failing-runc refuses: $1" >&2\nexit 3\n', { mode: 0o755 });
    const config = writeOptions('failing.toml', `BinaryName = "${failing}"\n`);
    const r = await ctd().run({ image: image().name, runtime: OUTRIGGER, flags: ['--runtime-config-path', config], args: ['true'] });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(failing);
    expect(r.stderr).toContain('failing-runc refuses: ');
    await waitFor('the shim to exit', () => (shimFor(ctd(), r.id) === undefined ? true : undefined));
    await ctd().ctr(['containers', 'rm', r.id]);
    const left = ctd().leftovers();
    expect(left.mounts).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
  });
});
