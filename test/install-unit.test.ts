/**
 * `outrigger install` / `uninstall` / `config` against a temp prefix and a temp config.toml (the
 * real `containerd config default` of the host's containerd 1.6): what lands where, a second
 * install changes nothing, uninstall leaves the config byte for byte as it was and removes only
 * what install made.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'smol-toml';
import { afterEach, describe, expect, it } from 'vitest';
import { LINK_ALIASES } from '../src/cli/invocation.ts';
import { install, uninstall } from '../src/install/install.ts';
import { manifestPath, readManifest } from '../src/install/manifest.ts';
import { parseContainerdVersion } from '../src/install/containerd-version.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function setup(configText: string | undefined) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ord-install-'));
  dirs.push(dir);
  const prefix = path.join(dir, 'prefix');
  const config = path.join(dir, 'etc/containerd/config.toml');
  if (configText !== undefined) {
    fs.mkdirSync(path.dirname(config), { recursive: true });
    fs.writeFileSync(config, configText, { mode: 0o600 });
  }
  // Any executable file stands for the SEA here; the e2e test installs the real one.
  const binary = path.join(dir, 'outrigger-src');
  fs.writeFileSync(binary, '#!/bin/sh\necho outrigger\n', { mode: 0o755 });
  return { dir, prefix, config, binary };
}

const base = { dryRun: false, runtimeName: 'outrigger', processors: ['zstd', 'gzip'] as const, now: () => new Date('2026-11-22T08:00:00Z') };

function listTree(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return (fs.readdirSync(root, { recursive: true }) as string[]).sort();
}

describe('install / uninstall', () => {
  it('installs binary, links, options file and config entries; twice is a no-op; uninstall restores', () => {
    const original = execFileSync('/usr/bin/containerd', ['config', 'default'], { encoding: 'utf8' });
    const { dir, prefix, config, binary } = setup(original);
    const first = install({ ...base, prefix, containerdConfig: config, sourceBinary: binary });
    expect(first.configChanged).toBe(true);
    expect(first.diff).toContain('+[stream_processors."io.containerd.outrigger.zstd.v1.tar.zstd"]');
    expect(first.lines.join('\n')).toMatch(/restart containerd/);

    const bin = path.join(prefix, 'bin');
    expect(fs.readFileSync(path.join(bin, 'outrigger'), 'utf8')).toBe(fs.readFileSync(binary, 'utf8'));
    for (const name of Object.keys(LINK_ALIASES)) expect(fs.readlinkSync(path.join(bin, name))).toBe('outrigger');
    const options = fs.readFileSync(path.join(prefix, 'etc/outrigger/runtime-options.toml'), 'utf8');
    expect(options).toContain('BinaryName = "runc"');

    const merged = fs.readFileSync(config, 'utf8');
    const doc = parse(merged) as any;
    expect(doc.plugins['io.containerd.grpc.v1.cri'].containerd.runtimes.outrigger.options.ConfigPath).toBe(path.join(prefix, 'etc/outrigger/runtime-options.toml'));
    expect(doc.stream_processors['io.containerd.outrigger.zstd.v1.tar.zstd'].path).toBe(path.join(bin, 'outrigger-zstd'));
    expect(fs.statSync(config).mode & 0o777).toBe(0o600);
    // The backup is the file as it was, named with the time.
    const backups = readManifest(prefix)!.containerdConfig.backups;
    expect(backups).toEqual([`${config}.outrigger-backup-20261122T080000Z`]);
    expect(fs.readFileSync(backups[0]!, 'utf8')).toBe(original);
    expect(fs.statSync(backups[0]!).mode & 0o777).toBe(0o600);

    const stat = fs.statSync(config);
    const second = install({ ...base, prefix, containerdConfig: config, sourceBinary: binary });
    expect(second.configChanged).toBe(false);
    expect(second.diff).toBe('');
    expect(fs.readFileSync(config, 'utf8')).toBe(merged);
    expect(fs.statSync(config).mtimeMs).toBe(stat.mtimeMs);
    expect(readManifest(prefix)!.containerdConfig.backups).toHaveLength(1);

    const removed = uninstall({ prefix, dryRun: false, now: () => new Date('2026-11-22T09:00:00Z') });
    expect(removed.configChanged).toBe(true);
    expect(fs.readFileSync(config, 'utf8')).toBe(original);
    expect(fs.existsSync(prefix)).toBe(false);
    // Only the backups were added next to the config.
    expect(listTree(path.dirname(config))).toEqual(['config.toml', 'config.toml.outrigger-backup-20261122T080000Z', 'config.toml.outrigger-backup-20261122T090000Z']);
    expect(fs.existsSync(dir)).toBe(true);
  });

  it('creates the processors\' log directory, and uninstall leaves it and its logs alone', () => {
    const { dir, prefix, config, binary } = setup('version = 2\n');
    const logDir = path.join(dir, 'var/log/outrigger');
    install({ ...base, prefix, containerdConfig: config, sourceBinary: binary, logDir });
    expect(fs.statSync(logDir).isDirectory()).toBe(true);
    expect(fs.readFileSync(config, 'utf8')).toContain(path.join(logDir, 'outrigger-zstd.log'));
    fs.writeFileSync(path.join(logDir, 'outrigger-zstd.log'), 'a line\n');
    uninstall({ prefix, dryRun: false });
    expect(fs.readFileSync(path.join(logDir, 'outrigger-zstd.log'), 'utf8')).toBe('a line\n');
  });

  it("keeps an operator's runtime options file across install and uninstall", () => {
    const { prefix, config, binary } = setup('version = 2\n');
    const options = path.join(prefix, 'etc/outrigger/runtime-options.toml');
    fs.mkdirSync(path.dirname(options), { recursive: true });
    fs.writeFileSync(options, 'BinaryName = "crun"\n');
    const r = install({ ...base, prefix, containerdConfig: config, sourceBinary: binary });
    expect(r.lines).toContain(`${options}: exists, kept as it is`);
    uninstall({ prefix, dryRun: false });
    expect(fs.readFileSync(options, 'utf8')).toBe('BinaryName = "crun"\n');
    expect(fs.readFileSync(config, 'utf8')).toBe('version = 2\n');
    expect(fs.existsSync(path.join(prefix, 'bin'))).toBe(false);
  });

  it('re-install with other processors replaces our block, not adds to it', () => {
    const { prefix, config, binary } = setup('version = 2\n# mine\n');
    install({ ...base, prefix, containerdConfig: config, sourceBinary: binary });
    install({ ...base, processors: ['zstd', 'estargz'], prefix, containerdConfig: config, sourceBinary: binary });
    const doc = parse(fs.readFileSync(config, 'utf8')) as any;
    expect(Object.keys(doc.stream_processors).sort()).toEqual(['io.containerd.outrigger.estargz.v1.tar.gzip', 'io.containerd.outrigger.zstd.v1.tar.zstd']);
    uninstall({ prefix, dryRun: false });
    expect(fs.readFileSync(config, 'utf8')).toBe('version = 2\n# mine\n');
  });

  it('dry run writes nothing and shows the diff', () => {
    const original = 'version = 2\n# keep me\n';
    const { prefix, config, binary } = setup(original);
    const r = install({ ...base, dryRun: true, prefix, containerdConfig: config, sourceBinary: binary });
    expect(r.diff).toMatch(/^--- .*config.toml\n\+\+\+ .*config.toml\n@@/);
    expect(r.lines[0]).toBe('dry run: nothing written');
    expect(fs.existsSync(prefix)).toBe(false);
    expect(fs.readFileSync(config, 'utf8')).toBe(original);
  });

  it('creates a missing config (version from containerd) and uninstall deletes it again', () => {
    const { prefix, config, binary } = setup(undefined);
    install({ ...base, prefix, containerdConfig: config, sourceBinary: binary, containerdMajor: '1.6' });
    expect((parse(fs.readFileSync(config, 'utf8')) as any).version).toBe(2);
    uninstall({ prefix, dryRun: false });
    expect(fs.existsSync(config)).toBe(false);
    expect(fs.existsSync(path.dirname(config))).toBe(false);
  });

  it('never overwrites a file that is not ours, and leaves everything untouched when refusing', () => {
    const original = 'version = 2\n';
    const { prefix, config, binary } = setup(original);
    fs.mkdirSync(path.join(prefix, 'bin'), { recursive: true });
    fs.writeFileSync(path.join(prefix, 'bin', 'ctd-decoder'), 'the real imgcrypt decoder');
    expect(() => install({ ...base, prefix, containerdConfig: config, sourceBinary: binary })).toThrow(/ctd-decoder exists and is not a symlink/);
    expect(fs.readFileSync(path.join(prefix, 'bin', 'ctd-decoder'), 'utf8')).toBe('the real imgcrypt decoder');
    expect(fs.readFileSync(config, 'utf8')).toBe(original);
    expect(fs.existsSync(manifestPath(prefix))).toBe(false);
  });

  it('refuses a config it cannot parse, naming the file', () => {
    const { prefix, config, binary } = setup('version = 2\n[plugins\n');
    expect(() => install({ ...base, prefix, containerdConfig: config, sourceBinary: binary })).toThrow(`${config}: not valid TOML`);
    expect(fs.existsSync(prefix)).toBe(false);
  });

  it('uninstall without an install says so', () => {
    const { prefix } = setup(undefined);
    expect(() => uninstall({ prefix, dryRun: false })).toThrow(/no outrigger install recorded/);
  });

  it('reads containerd --version output', () => {
    expect(parseContainerdVersion('containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1')).toEqual({ version: '1.6.20~ds1', major: '1.6' });
    expect(parseContainerdVersion('containerd containerd.io v2.1.4 75cb2b7')?.major).toBe('2.x');
    expect(parseContainerdVersion('containerd github.com/containerd/containerd v1.7.27 abc')?.major).toBe('1.7');
    const out = execFileSync('/usr/bin/containerd', ['--version'], { encoding: 'utf8' });
    expect(parseContainerdVersion(out)?.major).toBe('1.6');
  });
});

describe('CLI', () => {
  const cli = (args: string[]) =>
    spawnSync(path.join(repoRoot, 'node_modules/.bin/node'), [path.join(repoRoot, 'src/cli/main.ts'), ...args], { encoding: 'utf8' });

  it('`config` prints the snippet for the requested major', () => {
    const r = cli(['config', '--containerd-version', '2.x', '--prefix', '/opt/o']);
    expect(r.status).toBe(0);
    const doc = parse(r.stdout) as any;
    expect(doc.version).toBe(3);
    expect(doc.plugins['io.containerd.cri.v1.runtime'].containerd.runtimes.outrigger.runtime_type).toBe('io.containerd.outrigger.v2');
    expect(doc.stream_processors['io.containerd.outrigger.zstd.v1.tar.gzip'].path).toBe('/opt/o/bin/outrigger-zstd');
    // Without a flag it asks the host's containerd (1.6 here).
    const detected = cli(['config']);
    expect(detected.status).toBe(0);
    expect((parse(detected.stdout) as any).plugins['io.containerd.grpc.v1.cri']).toBeDefined();
  });

  it('bad flags are usage errors with a reason', () => {
    const r = cli(['config', '--processors', 'gzip,estargz']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/gzip.*estargz.*at random/);
    const v = cli(['config', '--containerd-version', '1.5']);
    expect(v.status).toBe(2);
    expect(v.stderr).toMatch(/--containerd-version must be 1.6, 1.7 or 2.x/);
  });

  it('`install --dry-run` from the command line prints the diff and writes nothing', () => {
    const { prefix, config, binary } = setup('version = 2\n');
    const r = cli(['install', '--dry-run', '--prefix', prefix, '--containerd-config', config, '--binary', binary, '--processors', 'zstd,imgcrypt']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('+[stream_processors."io.containerd.ocicrypt.decoder.v1.tar.gzip"]');
    expect(r.stdout).toContain('+# ctd-decoder = outrigger imgcrypt decrypt');
    expect(fs.existsSync(prefix)).toBe(false);
  });
});
