/**
 * Choosing the OCI runtime the way an operator does: a runtime options TOML (`BinaryName`,
 * `Root`), which ctr's --runtime-config-path and CRI send to a non-runc runtime type as
 * runtimeoptions.v1.Options{config_path}.
 *
 * crun: on this host (cgroup v1 with a controller-less unified hierarchy, "hybrid") crun itself
 * refuses every container, under the stock io.containerd.runc.v2 (`--runc-binary crun`) as well;
 * the test pins that our shim reaches crun and reports crun's reason the same way, and leaks
 * nothing. The full scenarios then run through a BinaryName that is a logging wrapper around
 * runc with its own Root, which proves the options reach every runtime call.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { uniqueId, useContainerd } from './harness.ts';
import { OUTRIGGER, RUNC_V2, shimFor, taskStatus, useTestImage, pinnedShimBinDir, waitFor } from './shim-support.ts';

const CRUN_ROOT_BASE = '/run/containerd/outrigger-crun';
const WRAPPED_ROOT_BASE = '/run/containerd/outrigger-wrapped';
const image = useTestImage();
const ctd = useContainerd({
  binDirs: [pinnedShimBinDir()],
  ociRuntimes: [
    { binary: '/usr/sbin/runc', rootBase: '/run/containerd/runc' },
    { binary: '/usr/bin/crun', rootBase: CRUN_ROOT_BASE },
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
  it('BinaryName = "crun": crun is the one that runs, and its refusal reaches ctr as under runc.v2', async () => {
    await ctd().importImage(image().file);
    const config = writeConfig('crun.toml', `BinaryName = "crun"\nRoot = "${CRUN_ROOT_BASE}"\n`);
    const ours = await ctd().run({ image: image().name, runtime: OUTRIGGER, flags: ['--runtime-config-path', config], args: ['true'] });
    const stock = await ctd().run({ image: image().name, runtime: RUNC_V2, flags: ['--runc-binary', 'crun'], args: ['true'] });
    const crunReason = /failed: (.+): unknown/.exec(stock.stderr)?.[1];
    expect(crunReason, stock.stderr).toBeTruthy();
    expect(stock.exitCode).not.toBe(0);
    expect(ours.exitCode).not.toBe(0);
    // The same shape as the Go shim, the runtime's own "crun create failed" said once.
    expect(runtimeFailure(ours.stderr, ours.id)).toBe(runtimeFailure(stock.stderr, stock.id));
    expect(ours.stderr).toContain(`OCI runtime create failed: ${crunReason!}`);
    const left = ctd().leftovers();
    expect(left.mounts).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
    await waitFor('the shim to exit', () => (shimFor(ctd(), ours.id) === undefined ? true : undefined));
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

