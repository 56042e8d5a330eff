/**
 * The OCI runtime settings a task runs with, from whatever containerd put in the options Any
 * (task-api.md §3, §7.2): `containerd.runc.v1.Options` (ctr, Go clients), or
 * `runtimeoptions.v1.Options` (CRI for non-runc runtime types, `ctr --runtime-config-path`)
 * pointing at a TOML file (config_path) or carrying it inline (config_body, containerd 2.x).
 * The TOML uses the runc Options field names as CRI writes them (BinaryName, Root, SystemdCgroup…).
 * Saved in the bundle (options.json) so `delete` can clean up after a dead shim with the same
 * binary and root.
 */
import fs from 'node:fs';
import type { Any } from '@bufbuild/protobuf/wkt';
import { OptionsSchema as RuncOptionsSchema } from '../../../src/api/gen/containerd/runc/v1/oci_pb.ts';
import { OptionsSchema as RuntimeOptionsSchema } from '../../../src/api/gen/runtimeoptions/v1/api_pb.ts';
import { anyIs, unpackAny } from '../../../src/api/typeurl.ts';
import { parseFlatToml } from './flat-toml.ts';
import { DEFAULT_OPTIONS, DEFAULT_RUNTIME_BINARY } from './saved-options.ts';
import type { RuntimeOptions } from './saved-options.ts';

export { DEFAULT_OPTIONS, DEFAULT_ROOT_BASE, DEFAULT_RUNTIME_BINARY, isRuntimeOptions, OPTIONS_FILE, rootFor } from './saved-options.ts';
export type { RuntimeOptions } from './saved-options.ts';

export function runtimeOptionsFromAny(any: Any | undefined): RuntimeOptions {
  if (any === undefined || any.typeUrl === '') return DEFAULT_OPTIONS;
  if (anyIs(any, RuncOptionsSchema)) {
    const o = unpackAny(any, RuncOptionsSchema);
    return {
      binaryName: o.binaryName === '' ? DEFAULT_RUNTIME_BINARY : o.binaryName,
      root: o.root,
      systemdCgroup: o.systemdCgroup,
      noPivotRoot: o.noPivotRoot,
      noNewKeyring: o.noNewKeyring,
      ioUid: o.ioUid,
      ioGid: o.ioGid,
      shimCgroup: o.shimCgroup,
      criuPath: o.criuPath,
      criuImagePath: o.criuImagePath,
      criuWorkPath: o.criuWorkPath,
    };
  }
  if (anyIs(any, RuntimeOptionsSchema)) {
    const o = unpackAny(any, RuntimeOptionsSchema);
    let text: string;
    if (o.configPath !== '') {
      try {
        text = fs.readFileSync(o.configPath, 'utf8');
      } catch (err) {
        throw new Error(`runtime options: cannot read config_path ${o.configPath}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    } else {
      text = new TextDecoder().decode(o.configBody);
    }
    return optionsFromToml(text, o.configPath === '' ? 'config_body' : o.configPath);
  }
  throw new Error(`runtime options of type ${any.typeUrl} are not supported (want containerd.runc.v1.Options or runtimeoptions.v1.Options)`);
}

/** Keys as CRI's TOML spells runc Options (Go field names); snake_case accepted too. */
export function optionsFromToml(text: string, source: string): RuntimeOptions {
  const table = parseFlatToml(text, source);
  const norm = new Map<string, string | boolean | number>();
  for (const [k, v] of table) norm.set(k.replaceAll('_', '').toLowerCase(), v);
  const str = (key: string, fallback: string): string => {
    const v = norm.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'string') throw new Error(`runtime options ${source}: ${key} must be a string`);
    return v;
  };
  const bool = (key: string): boolean => {
    const v = norm.get(key);
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw new Error(`runtime options ${source}: ${key} must be true or false`);
    return v;
  };
  const int = (key: string): number => {
    const v = norm.get(key);
    if (v === undefined) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`runtime options ${source}: ${key} must be a uint32`);
    return v;
  };
  const binaryName = str('binaryname', '');
  return {
    binaryName: binaryName === '' ? DEFAULT_RUNTIME_BINARY : binaryName,
    root: str('root', ''),
    systemdCgroup: bool('systemdcgroup'),
    noPivotRoot: bool('nopivotroot'),
    noNewKeyring: bool('nonewkeyring'),
    ioUid: int('iouid'),
    ioGid: int('iogid'),
    shimCgroup: str('shimcgroup', ''),
    criuPath: str('criupath', ''),
    criuImagePath: str('criuimagepath', ''),
    criuWorkPath: str('criuworkpath', ''),
  };
}
