/** Runtime options from runc Options and from runtimeoptions TOML (config_path / config_body). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OptionsSchema as RuntimeOptionsSchema } from '../src/api/gen/runtimeoptions/v1/api_pb.ts';
import { packAny } from '../src/api/typeurl.ts';
import { parseFlatToml } from '../shims/outrigger-v2/runtime/flat-toml.ts';
import { DEFAULT_OPTIONS, optionsFromToml, rootFor, runtimeOptionsFromAny } from '../shims/outrigger-v2/runtime/options.ts';

describe('runtime options', () => {
  it('defaults to runc under /run/containerd/runc/<ns>', () => {
    expect(runtimeOptionsFromAny(undefined)).toEqual(DEFAULT_OPTIONS);
    expect(rootFor(DEFAULT_OPTIONS, 'k8s.io')).toBe('/run/containerd/runc/k8s.io');
    expect(rootFor({ ...DEFAULT_OPTIONS, root: '/run/crun' }, 'default')).toBe('/run/crun/default');
  });

  it('reads CRI-style TOML from config_path, and config_body inline', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shim-opts-'));
    try {
      const file = path.join(dir, 'rt.toml');
      fs.writeFileSync(file, '# outrigger\nBinaryName = "crun" # comment\nSystemdCgroup = true\nIoUid = 1000\n[extra]\nRoot = \'/run/crun\'\n');
      expect(runtimeOptionsFromAny(packAny(RuntimeOptionsSchema, { configPath: file }))).toMatchObject({
        binaryName: 'crun',
        systemdCgroup: true,
        ioUid: 1000,
        root: '/run/crun',
      });
      const body = new TextEncoder().encode('no_pivot_root = true\n');
      expect(runtimeOptionsFromAny(packAny(RuntimeOptionsSchema, { configBody: body })).noPivotRoot).toBe(true);
      expect(() => runtimeOptionsFromAny(packAny(RuntimeOptionsSchema, { configPath: path.join(dir, 'missing.toml') }))).toThrow(/cannot read config_path/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the line and key of bad input', () => {
    expect(() => parseFlatToml('a = [1, 2]\n', 'x.toml')).toThrow('x.toml:1: unsupported value [1, 2] (strings, booleans and integers only)');
    expect(() => parseFlatToml('\njunk\n', 'x.toml')).toThrow('x.toml:2: not a key = value line: junk');
    expect(() => optionsFromToml('SystemdCgroup = "yes"', 'y.toml')).toThrow('runtime options y.toml: systemdcgroup must be true or false');
  });
});
