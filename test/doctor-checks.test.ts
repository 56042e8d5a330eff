/**
 * `outrigger doctor` on a node prepared in a temp dir (installed prefix, merged config, keys dir),
 * first healthy, then with one fault injected at a time: each fault yields an error finding with
 * a fix, and the command exits non-zero.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type DoctorEnv, runChecks } from '../src/doctor/checks.ts';
import { formatFindings, hasErrors } from '../src/doctor/findings.ts';
import { install } from '../src/install/install.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A healthy node: outrigger installed under a prefix, its bin plus the system dirs on containerd's PATH. */
function healthyNode(): { env: DoctorEnv; prefix: string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ord-doctor-'));
  dirs.push(dir);
  const prefix = path.join(dir, 'prefix');
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(config, 'version = 2\n# node config\n[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true\n');
  const binary = path.join(dir, 'outrigger-src');
  fs.writeFileSync(binary, '#!/bin/sh\necho outrigger\n', { mode: 0o755 });
  install({ prefix, containerdConfig: config, sourceBinary: binary, dryRun: false, runtimeName: 'outrigger', processors: ['zstd', 'gzip', 'imgcrypt'] });
  const keysDir = path.join(dir, 'keys');
  fs.mkdirSync(keysDir, { mode: 0o700 });
  fs.writeFileSync(path.join(keysDir, 'private.pem'), 'key', { mode: 0o600 });
  const env: DoctorEnv = {
    containerdBinary: '/usr/bin/containerd',
    ctrBinary: '/usr/bin/ctr',
    containerdConfig: config,
    containerdPath: `${path.join(prefix, 'bin')}:/usr/sbin:/usr/bin:/sbin:/bin`,
    keysDir,
    cgroupRoot: '/sys/fs/cgroup',
    namespace: 'default',
  };
  return { env, prefix, dir };
}

function errorsOf(env: DoctorEnv) {
  const findings = runChecks(env);
  return { findings, errors: findings.filter((f) => f.severity === 'error') };
}

describe('doctor', () => {
  it('a healthy node has no errors and reports versions, cgroup mode and the shim path', () => {
    const { env, prefix } = healthyNode();
    const { findings, errors } = errorsOf(env);
    expect(errors, formatFindings(findings)).toEqual([]);
    const text = formatFindings(findings);
    expect(text).toMatch(/ok {4}containerd: containerd 1\.6\.\d+/);
    expect(text).toContain(`containerd finds ${path.join(prefix, 'bin', 'containerd-shim-outrigger-v2')}`);
    expect(text).toMatch(/oci runtime: \/usr\/sbin\/runc: runc version/);
    expect(text).toMatch(/cgroups: cgroup v[12]/);
    expect(text).toMatch(/keys dir: .* private and readable/);
  });

  it('shim not on containerd\'s PATH', () => {
    const { env } = healthyNode();
    const { errors } = errorsOf({ ...env, containerdPath: '/usr/sbin:/usr/bin:/sbin:/bin' });
    expect(errors.map((e) => e.check)).toEqual(['shim']);
    expect(errors[0]!.message).toContain('containerd-shim-outrigger-v2 is not on containerd\'s PATH');
    expect(errors[0]!.fix).toMatch(/outrigger install/);
  });

  it('missing runc', () => {
    const { env, prefix } = healthyNode();
    const { errors } = errorsOf({ ...env, containerdPath: path.join(prefix, 'bin') });
    expect(errors.map((e) => e.check)).toEqual(['oci runtime']);
    expect(errors[0]!.message).toMatch(/^runc is not on containerd's PATH/);
    expect(errors[0]!.fix).toMatch(/install runc/);
  });

  it('unreadable keys dir (a dangling symlink, a file) and loose key permissions', () => {
    const { env, dir } = healthyNode();
    const dangling = path.join(dir, 'keys-link');
    fs.symlinkSync(path.join(dir, 'gone'), dangling);
    let { errors } = errorsOf({ ...env, keysDir: dangling });
    expect(errors.map((e) => e.check)).toEqual(['keys dir']);
    expect(errors[0]!.message).toContain('ENOENT');
    const file = path.join(dir, 'keys-file');
    fs.writeFileSync(file, '');
    ({ errors } = errorsOf({ ...env, keysDir: file }));
    expect(errors[0]!.message).toContain('is not a directory');
    fs.chmodSync(path.join(env.keysDir, 'private.pem'), 0o644);
    const warn = runChecks(env).find((f) => f.check === 'keys dir')!;
    expect(warn.severity).toBe('warn');
    expect(warn.fix).toBe(`chmod -R go-rwx ${env.keysDir}`);
  });

  it('bad TOML', () => {
    const { env } = healthyNode();
    fs.appendFileSync(env.containerdConfig, '\n[plugins."broken\n');
    const { errors } = errorsOf(env);
    expect(errors.map((e) => e.check)).toEqual(['config']);
    expect(errors[0]!.message).toContain(`${env.containerdConfig} is not valid TOML`);
    expect(errors[0]!.fix).toMatch(/outrigger-backup/);
  });

  it('conflicting stream processor ids', () => {
    const { env } = healthyNode();
    fs.appendFileSync(
      env.containerdConfig,
      '\n[stream_processors."io.example.zstd"]\n  accepts = ["application/vnd.oci.image.layer.v1.tar+zstd"]\n  returns = "application/vnd.oci.image.layer.v1.tar"\n  path = "/usr/bin/true"\n',
    );
    const { errors } = errorsOf(env);
    expect(errors.map((e) => e.check)).toEqual(['stream processors']);
    expect(errors[0]!.message).toBe(
      'application/vnd.oci.image.layer.v1.tar+zstd is accepted by io.containerd.outrigger.zstd.v1.tar.zstd and io.example.zstd; containerd picks one at random on each start',
    );
  });

  it('the command exits 1 on errors and prints each with its fix', () => {
    const { env } = healthyNode();
    fs.writeFileSync(env.containerdConfig, 'version = = 2\n');
    const r = spawnSync(path.join(repoRoot, 'node_modules/.bin/node'), [path.join(repoRoot, 'src/cli/main.ts'), 'doctor', '--containerd-config', env.containerdConfig, '--keys-dir', env.keysDir], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/ERROR config: .* is not valid TOML/);
    expect(r.stdout).toMatch(/\n {6}fix: /);
    expect(hasErrors([{ check: 'x', severity: 'warn', message: '' }])).toBe(false);
  });
});
