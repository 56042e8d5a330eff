/**
 * `outrigger install` onto a running private containerd 1.6, the way an operator does it on a
 * node: the real SEA installs itself into a temp prefix (the only outrigger on containerd's PATH)
 * and merges into the config file containerd runs with; containerd restarts on the merged config;
 * a container runs under our shim from the prefix and a tar+zstd image unpacks through our
 * processor; a second install changes nothing; uninstall (run by the installed binary) restores
 * the config byte for byte and removes the prefix.
 *
 * The harness regenerates its own config.toml on every (re)start, so containerd is started through
 * a wrapper that runs it on a separate "node config" (a copy of the harness's first config):
 * install edits that file and restarts really load it.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltImage, buildRootfsTar, buildTestImages } from '../../scripts/test-images.ts';
import { DIST_BIN, SYSTEM_CONTAINERD } from '../../scripts/dev-containerd/private-containerd.ts';
import { useContainerd } from './harness.ts';

const OUTRIGGER = 'io.containerd.outrigger.v2';
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'install-e2e-'));
const prefix = path.join(workDir, 'prefix');
const logDir = path.join(workDir, 'logs');
const nodeConfig = path.join(workDir, 'node-config.toml');
const salt = `install-e2e-${process.pid}-${randomBytes(6).toString('hex')}`;

// The SEA as it is now: other work rebuilds dist/ at any time.
// (Named plain `outrigger`: any `outrigger-<x>` name would dispatch to the command <x>.)
const sea = path.join(workDir, 'download', 'outrigger');
fs.mkdirSync(path.dirname(sea));
fs.copyFileSync(fs.realpathSync(path.join(DIST_BIN, 'outrigger')), sea);
fs.chmodSync(sea, 0o755);

const wrapper = path.join(workDir, 'containerd-on-node-config');
fs.writeFileSync(
  wrapper,
  // $2 is the harness's own config (it passes `--config FILE`); only the first start copies it.
  `#!/bin/sh\n[ -e '${nodeConfig}' ] || cp "$2" '${nodeConfig}'\nexec '${SYSTEM_CONTAINERD}' --config '${nodeConfig}'\n`,
  { mode: 0o755 },
);
fs.mkdirSync(logDir);

let image: BuiltImage | undefined;
beforeAll(async () => {
  [image] = await buildTestImages({ outDir: path.join(workDir, 'images'), salt, media: ['zstd'] });
});
afterAll(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
});

// containerd's PATH: the prefix's bin first, then the system dirs (no dist/bin).
const ctd = useContainerd({ containerdBinary: wrapper, binDirs: [path.join(prefix, 'bin')] });

async function outrigger(binary: string, args: string[]) {
  return execa(binary, args, { reject: false, timeout: 60_000 });
}

function backups(): string[] {
  return fs.readdirSync(workDir).filter((f) => f.startsWith('node-config.toml.outrigger-backup-'));
}

describe('outrigger install on a running containerd', () => {
  let original = '';

  it('installs, containerd restarts on the merged config, our shim runs a container and our processor unpacks zstd', async () => {
    original = fs.readFileSync(nodeConfig, 'utf8');
    const r = await outrigger(sea, ['install', '--prefix', prefix, '--containerd-config', nodeConfig, '--processors', 'zstd,gzip', '--log-dir', logDir]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`installed ${path.join(prefix, 'bin', 'outrigger')}`);
    expect(r.stdout).toContain('+[stream_processors."io.containerd.outrigger.zstd.v1.tar.zstd"]');
    expect(r.stdout).toContain('restart containerd');
    expect(backups()).toHaveLength(1);
    expect(fs.readFileSync(path.join(workDir, backups()[0]!), 'utf8')).toBe(original);
    expect(fs.readlinkSync(path.join(prefix, 'bin', 'containerd-shim-outrigger-v2'))).toBe('outrigger');

    await ctd().restart('SIGTERM');
    const dump = await execa(SYSTEM_CONTAINERD, ['--config', nodeConfig, 'config', 'dump']);
    expect(dump.stdout).toContain(`path = "${path.join(prefix, 'bin', 'outrigger-zstd')}"`);

    // The zstd layer goes through our processor (its log line) and unpacks to the exact rootfs
    // (containerd checks the diff_id of what the processor wrote).
    const img = image!;
    await ctd().importImage(img.file);
    const log = fs.readFileSync(path.join(logDir, 'outrigger-zstd.log'), 'utf8').trim().split('\n');
    const rootfs = await buildRootfsTar({ imageName: img.name, salt });
    expect(`sha256:${createHash('sha256').update(rootfs).digest('hex')}`).toBe(img.diffId);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(new RegExp(`result=ok format=zstd .*out=${rootfs.length} `));

    // A container under our runtime, whose shim containerd resolved to the installed link.
    const run = await ctd().run({ image: img.name, runtime: OUTRIGGER, detach: true, args: ['sleep', '60'] });
    expect(run.exitCode, run.stderr).toBe(0);
    try {
      const bundle = path.join(ctd().paths.state, 'io.containerd.runtime.v2.task', ctd().namespace, run.id);
      expect(fs.readFileSync(path.join(bundle, 'shim-binary-path'), 'utf8')).toBe(path.join(prefix, 'bin', 'containerd-shim-outrigger-v2'));
      const exec = await ctd().ctr(['tasks', 'exec', '--exec-id', 'salt', run.id, 'cat', '/etc/outrigger-salt']);
      expect(exec.stdout).toBe(salt);
    } finally {
      await ctd().ctr(['tasks', 'kill', '--signal', 'SIGKILL', run.id]);
      for (let i = 0; i < 100; i++) {
        if ((await ctd().ctr(['tasks', 'delete', run.id])).exitCode === 0) break;
        await sleep(100);
      }
      await ctd().ctr(['containers', 'delete', run.id], { check: true });
    }

    // doctor, run by the installed binary, finds nothing wrong and its live test runs a container
    // under our runtime through this containerd.
    const doctor = await outrigger(path.join(prefix, 'bin', 'outrigger'), [
      'doctor',
      '--containerd-config', nodeConfig,
      '--path', `${path.join(prefix, 'bin')}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      '--socket', ctd().address,
      '--namespace', ctd().namespace,
      '--smoke-image', img.name,
    ]);
    expect(doctor.exitCode, `${doctor.stdout}\n${doctor.stderr}`).toBe(0);
    expect(doctor.stdout).toContain(`ok    shim: containerd finds ${path.join(prefix, 'bin', 'containerd-shim-outrigger-v2')}`);
    expect(doctor.stdout).toContain(`ok    live: ran ${img.name} under ${OUTRIGGER}`);
  });

  it('a second install changes nothing', async () => {
    const before = fs.readFileSync(nodeConfig);
    const mtime = fs.statSync(nodeConfig).mtimeMs;
    const r = await outrigger(sea, ['install', '--prefix', prefix, '--containerd-config', nodeConfig, '--processors', 'zstd,gzip', '--log-dir', logDir]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('already up to date, not changed');
    expect(r.stdout).not.toContain('restart containerd');
    expect(fs.readFileSync(nodeConfig).equals(before)).toBe(true);
    expect(fs.statSync(nodeConfig).mtimeMs).toBe(mtime);
    expect(backups()).toHaveLength(1);
  });

  it('uninstall (by the installed binary) restores the config byte for byte and removes the prefix', async () => {
    const r = await outrigger(path.join(prefix, 'bin', 'outrigger'), ['uninstall', '--prefix', prefix]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(fs.readFileSync(nodeConfig, 'utf8')).toBe(original);
    expect(fs.existsSync(prefix)).toBe(false);
    // containerd starts again on the restored file, without our runtime.
    await ctd().restart('SIGTERM');
    const dump = await execa(SYSTEM_CONTAINERD, ['--config', nodeConfig, 'config', 'dump']);
    expect(dump.stdout).not.toContain('outrigger');
  });
});
