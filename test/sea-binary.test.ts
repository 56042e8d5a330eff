/**
 * The built artefact: one SEA ELF, every link reaches the right command, --version and --help
 * say what the issue promises. Runs the binary itself, so it proves the bundle and SEA blob too.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LINK_ALIASES } from '../src/cli/invocation.ts';
import { builtBinary, distBin, repoRoot } from './support/built-binary.ts';

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(file, args, { encoding: 'utf8', env, timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('dist/bin/outrigger', () => {
  it('is a single ELF executable with the Node SEA blob inside', () => {
    const file = builtBinary();
    const fd = fs.openSync(file, 'r');
    const magic = Buffer.alloc(4);
    fs.readSync(fd, magic, 0, 4, 0);
    fs.closeSync(fd);
    expect(magic.toString('latin1')).toBe('\x7fELF');
    expect(fs.statSync(file).mode & 0o111).not.toBe(0);
    const sections = execFileSync('readelf', ['-S', '-W', file], { encoding: 'utf8' });
    expect(sections).toMatch(/\.note\.node\.sea|NODE_SEA/);
  });

  it('has every link name as a symlink to the one binary', () => {
    const real = fs.realpathSync(builtBinary());
    for (const name of Object.keys(LINK_ALIASES)) {
      const link = path.join(distBin, name);
      expect(fs.lstatSync(link).isSymbolicLink(), name).toBe(true);
      expect(fs.realpathSync(link), name).toBe(real);
    }
  });

  it('--version names the outrigger version, the embedded Node and the git commit', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const r = run(builtBinary(), ['--version']);
    expect(r.status).toBe(0);
    const m = /^outrigger (\S+) \(node (v\d+\.\d+\.\d+), commit ([0-9a-f]{12}(-dirty)?|unknown)\)\n$/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(m![1]).toBe(pkg.version);
    expect(m![2]).toMatch(/^v26\./);
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    expect(m![3]!.startsWith(head)).toBe(true);
  });

  it('--help lists every command, nested ones included', () => {
    const r = run(builtBinary(), ['--help']);
    expect(r.status).toBe(0);
    for (const path of ['shim', 'zstd', 'estargz build', 'estargz unpack', 'imgcrypt decrypt', 'imgcrypt encrypt', 'log']) {
      expect(r.stdout).toContain(`outrigger ${path} `);
    }
  });

  it('ignores the host NODE_OPTIONS', () => {
    const r = run(builtBinary(), ['--version'], { ...process.env, NODE_OPTIONS: '--require /nonexistent/preload.js' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('ends quietly when the reader of its help closes early (`outrigger zstd --help | head -c 10`)', () => {
    const script = `"${builtBinary()}" zstd --help 2>"$ERR" | head -c 10 >/dev/null; echo "\${PIPESTATUS[0]}"`;
    for (let round = 0; round < 3; round++) {
      const errFile = path.join(fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'epipe-')), 'stderr');
      const status = execFileSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, ERR: errFile } }).trim();
      expect(['0', '141']).toContain(status);
      expect(fs.readFileSync(errFile, 'utf8')).toBe('');
      fs.rmSync(path.dirname(errFile), { recursive: true, force: true });
    }
  });

  it('exits 2 with a message on an unknown command', () => {
    const r = run(builtBinary(), ['no-such-command']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'no-such-command'/);
  });
});

describe('link dispatch', () => {
  // The usage line commander prints names the command path the link resolved to.
  const expectedUsage: Record<string, string> = {
    'containerd-shim-outrigger-v2': 'Usage: outrigger shim',
    'outrigger-zstd': 'Usage: outrigger zstd',
    'outrigger-log': 'Usage: outrigger log',
    'ctd-decoder': 'Usage: outrigger imgcrypt decrypt',
    'outrigger-imgcrypt': 'Usage: outrigger imgcrypt',
    'outrigger-estargz': 'Usage: outrigger estargz',
  };

  for (const [link, usage] of Object.entries(expectedUsage)) {
    it(`${link} --help shows "${usage}"`, () => {
      const r = run(builtBinary(link), ['--help']);
      expect(r.status).toBe(0);
      expect(r.stdout.split('\n')[0]).toMatch(new RegExp(`^${usage} `));
    });
  }

  it('reaches the same command by bare name through PATH, as containerd starts it', () => {
    builtBinary();
    const env = { ...process.env, PATH: `${distBin}:${process.env.PATH}` };
    const r = spawnSync('ctd-decoder', ['--help'], { encoding: 'utf8', env });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: outrigger imgcrypt decrypt /);
  });

  it('outrigger-log run by hand (no fds 3-5 from a shim) fails with a usage error, never exit 0', () => {
    const r = run(builtBinary('outrigger-log'), ['path', '/tmp/x.log']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/fd 3 \(stdout\) is not open; outrigger-log is meant to be started by a shim/);
    expect(r.stdout).toBe('');
  });
});
