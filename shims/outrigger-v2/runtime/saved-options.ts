/**
 * The runtime settings as the daemon saves them in the bundle (options.json) and `delete`
 * reads them back. Kept apart from ./options.ts, which decodes containerd's protobuf options,
 * so that `delete` (run by containerd after every task) loads no protobuf code.
 */
export interface RuntimeOptions {
  readonly binaryName: string;
  /** runc --root; empty means the per-namespace default. */
  readonly root: string;
  readonly systemdCgroup: boolean;
  readonly noPivotRoot: boolean;
  readonly noNewKeyring: boolean;
  readonly ioUid: number;
  readonly ioGid: number;
  readonly shimCgroup: string;
  /** runc --criu: the CRIU binary for checkpoint/restore; empty means `criu` on PATH. */
  readonly criuPath?: string;
  /** Default image and work dirs for checkpoints when the request names none (runc Options 10, 11). */
  readonly criuImagePath?: string;
  readonly criuWorkPath?: string;
}

/** The daemon saves the options here in the bundle for `delete`. */
export const OPTIONS_FILE = 'options.json';

export const DEFAULT_RUNTIME_BINARY = 'runc';
/** runc's state for containerd's tasks lives here whatever containerd's own state dir is. */
export const DEFAULT_ROOT_BASE = '/run/containerd/runc';

export const DEFAULT_OPTIONS: RuntimeOptions = {
  binaryName: DEFAULT_RUNTIME_BINARY,
  root: '',
  systemdCgroup: false,
  noPivotRoot: false,
  noNewKeyring: false,
  ioUid: 0,
  ioGid: 0,
  shimCgroup: '',
};

export function rootFor(options: RuntimeOptions, namespace: string): string {
  return `${options.root === '' ? DEFAULT_ROOT_BASE : options.root}/${namespace}`;
}

export function isRuntimeOptions(value: unknown): value is RuntimeOptions {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.binaryName === 'string' && typeof v.root === 'string' && typeof v.systemdCgroup === 'boolean';
}
