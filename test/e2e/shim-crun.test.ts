/**
 * Choosing the OCI runtime the way an operator does: a runtime options TOML (`BinaryName`,
 * `Root`), which ctr's --runtime-config-path and CRI send to a non-runc runtime type as
 * runtimeoptions.v1.Options{config_path}.
 *
 * crun: with `BinaryName = "crun"` the containers really run under crun (its `state` under the
 * configured Root knows them, runc's root does not), and a crun refusal reaches ctr in the same
 * words as under io.containerd.runc.v2 with `--runc-binary crun`. (crun runs on this cgroup v1
 * "hybrid" host because scripts/setup-host mounts every controller as v1; the tty, exec,
 * pause/update, stats and OOM scenarios with crun are in shim-crun-features.test.ts.) The
 * wrapper test proves the options reach every runtime call: its BinaryName is a logging
 * wrapper around runc with its own Root.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { uniqueId, useContainerd } from './harness.ts';
import { OUTRIGGER, RUNC_V2, removeTask, shimFor, taskStatus, useTestImage, pinnedShimBinDir, waitFor } from './shim-support.ts';

const RUNC_ROOT_BASE = '/run/containerd/runc';
const CRUN_ROOT_BASE = '/run/containerd/outrigger-crun';
const STOCK_CRUN_ROOT_BASE = '/run/containerd/runc-v2-crun';
const WRAPPED_ROOT_BASE = '/run/containerd/outrigger-wrapped';
const image = useTestImage();
const ctd = useContainerd({
  binDirs: [pinnedShimBinDir()],
  ociRuntimes: [
    { binary: '/usr/sbin/runc', rootBase: RUNC_ROOT_BASE },
    { binary: '/usr/bin/crun', rootBase: CRUN_ROOT_BASE },
    { binary: '/usr/bin/crun', rootBase: STOCK_CRUN_ROOT_BASE },
    { binary: '/usr/sbin/runc', rootBase: WRAPPED_ROOT_BASE },
  ],
});

function writeConfig(name: string, body: string): string {
  const file = path.join(ctd().dir, name);
  fs.writeFileSync(file, body);
  return file;
}

/** ctr's error from "OCI runtime" on, with the container id made neutral, to compare two shims. */
function runtimeFailure(stderr: string, id: string): string {
  const line = /OCI runtime .*$/m.exec(stderr)?.[0];
  if (line === undefined) throw new Error(`no "OCI runtime … failed" in ctr's stderr: ${stderr}`);
  return line.split(id).join('<id>');
}

describe('OCI runtime from runtime options', () => {
  it('BinaryName = "crun": crun runs the containers (state under its Root, none in runc\'s), output and exit codes right', async () => {
    await ctd().importImage(image().file);
    const config = writeConfig('crun.toml', `BinaryName = "crun"\nRoot = "${CRUN_ROOT_BASE}"\n`);
    const flags = ['--runtime-config-path', config];
    const r = await ctd().run({ image: image().name, runtime: OUTRIGGER, flags, args: ['sh', '-c', 'echo out; echo err >&2; exit 7'] });
    expect(r).toMatchObject({ stdout: 'out\n', stderr: 'err\n', exitCode: 7 });

    const id = uniqueId('crun');
    await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, flags, args: ['sleep', '1000'] });
    const crunRoot = `${CRUN_ROOT_BASE}/${ctd().namespace}`;
    const state = JSON.parse(execFileSync('crun', ['--root', crunRoot, 'state', id], { encoding: 'utf8' })) as { status: string; pid: number };
    expect(state.status).toBe('running');
    // The pid containerd knows for the task is the one crun started.
    const ls = (await ctd().ctr(['tasks', 'ls'], { check: true })).stdout;
    expect(ls).toMatch(new RegExp(`^${id}\\s+${state.pid}\\s+RUNNING`, 'm'));
    expect(fs.existsSync(path.join(RUNC_ROOT_BASE, ctd().namespace, id))).toBe(false);
    const exec = await ctd().ctr(['tasks', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo in-exec; exit 5']);
    expect(exec).toMatchObject({ stdout: 'in-exec\n', exitCode: 5 });
    await removeTask(ctd(), id);
    expect(execFileSync('crun', ['--root', crunRoot, 'list', '--quiet'], { encoding: 'utf8' }).split('\n')).not.toContain(id);
    await waitFor('the shim to exit', () => (shimFor(ctd(), id) === undefined ? true : undefined));
  });

  it('crun refusing a missing executable: the same "OCI runtime create failed" line as runc.v2 with --runc-binary crun', async () => {
    const config = writeConfig('crun-refusal.toml', `BinaryName = "crun"\nRoot = "${CRUN_ROOT_BASE}"\n`);
    const ours = await ctd().run({ image: image().name, runtime: OUTRIGGER, flags: ['--runtime-config-path', config], args: ['/no/such/binary'] });
    const stock = await ctd().run({ image: image().name, runtime: RUNC_V2, flags: ['--runc-binary', 'crun', '--runc-root', STOCK_CRUN_ROOT_BASE], args: ['/no/such/binary'] });
    expect(stock.exitCode).not.toBe(0);
    expect(ours.exitCode).not.toBe(0);
    const reason = 'executable file `/no/such/binary` not found in $PATH: No such file or directory';
    // The runtime's reason said once, after the Go shim's prefix, no "crun create failed" of ours.
    expect(runtimeFailure(ours.stderr, ours.id)).toBe(`OCI runtime create failed: ${reason}: unknown`);
    expect(runtimeFailure(ours.stderr, ours.id)).toBe(runtimeFailure(stock.stderr, stock.id));
    // crun also writes its reason to its own stderr, which is the container's: our shim hands
    // crun the container's FIFOs, so ctr prints it above its error; the Go shim gives crun a
    // pipe it copies only after a successful create, so there it is dropped.
    const linesOfReason = (stderr: string) => stderr.split('\n').filter((l) => l === reason);
    expect(linesOfReason(ours.stderr)).toEqual([reason]);
    expect(linesOfReason(stock.stderr)).toEqual([]);
    await waitFor('the shim to exit', () => (shimFor(ctd(), ours.id) === undefined ? true : undefined));
    const left = ctd().leftovers();
    expect(left.mounts).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
  });

  it('runc refusing a missing executable: the same error text under both shims, prefix said once', async () => {
    const ours = await ctd().run({ image: image().name, runtime: OUTRIGGER, args: ['/no/such/binary'] });
    const stock = await ctd().run({ image: image().name, runtime: RUNC_V2, args: ['/no/such/binary'] });
    expect(ours.exitCode).not.toBe(0);
    expect(stock.exitCode).not.toBe(0);
    const line = runtimeFailure(ours.stderr, ours.id);
    expect(line).toMatch(/^OCI runtime create failed: runc create failed: .*no such file or directory: unknown$/);
    expect(line).toBe(runtimeFailure(stock.stderr, stock.id));
    await waitFor('the shim to exit', () => (shimFor(ctd(), ours.id) === undefined ? true : undefined));
    expect(ctd().leftovers().runtimeEntries).toEqual([]);
  });

  it('BinaryName and Root reach every runtime call: run, exec, ps, kill, delete through a wrapper', async () => {
    const log = path.join(ctd().dir, 'wrapper.log');
    const wrapper = path.join(ctd().dir, 'runc-wrapper');
    fs.writeFileSync(wrapper, `#!/bin/sh\necho "$*" >> ${log}\nexec /usr/sbin/runc "$@"\n`, { mode: 0o755 });
    const config = writeConfig('wrapped.toml', `BinaryName = "${wrapper}"\nRoot = "${WRAPPED_ROOT_BASE}"\n`);

    const r = await ctd().run({ image: image().name, runtime: OUTRIGGER, flags: ['--runtime-config-path', config], args: ['sh', '-c', 'echo wrapped; exit 7'] });
    expect(r.stdout).toBe('wrapped\n');
    expect(r.exitCode).toBe(7);

    const id = uniqueId('wrapped');
    await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, flags: ['--runtime-config-path', config], args: ['sleep', '1000'] });
    const exec = await ctd().ctr(['tasks', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo in-exec; exit 5']);
    expect(exec.stdout).toBe('in-exec\n');
    expect(exec.exitCode).toBe(5);
    const ps = await ctd().ctr(['tasks', 'ps', id], { check: true });
    expect(ps.stdout.trim().split('\n').slice(1)).toHaveLength(1);
    await ctd().ctr(['tasks', 'kill', '--all', '--signal', 'SIGKILL', id], { check: true });
    await waitFor('the task to stop', async () => ((await taskStatus(ctd(), id)) === 'STOPPED' ? true : undefined));
    await ctd().ctr(['tasks', 'delete', id], { check: true });
    await ctd().ctr(['containers', 'rm', id], { check: true });

    const calls = fs.readFileSync(log, 'utf8').trim().split('\n');
    const root = `--root ${WRAPPED_ROOT_BASE}/${ctd().namespace}`;
    for (const verb of ['create', 'start', 'exec', 'ps', 'kill', 'delete']) {
      expect(calls.some((c) => c.startsWith(root) && c.includes(` ${verb} `)), `${verb} in\n${calls.join('\n')}`).toBe(true);
    }
    expect(calls.every((c) => c.startsWith(root))).toBe(true);
    await waitFor('the shim to exit', () => (shimFor(ctd(), id) === undefined ? true : undefined));
  });

  it('IoUid/IoGid: the stdio a process gets belongs to that user, who can reopen it (/dev/stdout)', async () => {
    const owned = writeConfig('io-owner.toml', 'IoUid = 1000\nIoGid = 1000\n');
    const plain = writeConfig('io-plain.toml', '# defaults\n');
    const results: Record<string, { stdout: string; stderr: string; exitCode: number }> = {};
    for (const [name, config] of [['owned', owned], ['plain', plain]] as const) {
      const id = uniqueId(`io-${name}`);
      await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, flags: ['--runtime-config-path', config], args: ['sleep', '1000'] });
      results[name] = await ctd().ctr(['tasks', 'exec', '--user', '1000', '--exec-id', 'u', id, 'sh', '-c', 'stat -L -c %u:%g /proc/self/fd/1; echo reopened > /dev/stdout']);
      await ctd().ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
      await waitFor('the task to stop', async () => ((await taskStatus(ctd(), id)) === 'STOPPED' ? true : undefined));
      await ctd().ctr(['tasks', 'delete', id], { check: true });
      await ctd().ctr(['containers', 'rm', id], { check: true });
    }
    expect(results.owned).toMatchObject({ stdout: '1000:1000\nreopened\n', exitCode: 0 });
    // Without the options we leave the FIFO's owner as the client made it (ctr gives the exec
    // user the uid, root keeps the group); IoGid is what turned the group to 1000 above.
    expect(results.plain!.stdout).toMatch(/^\d+:0\nreopened\n$/);
  });
});

