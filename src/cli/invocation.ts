/**
 * Multicall dispatch: one binary reached by several names. containerd starts the shim and
 * stream processors by the bare name it found on PATH, and that name survives as argv0
 * (see ../shared/reference/node-sea.md §3), so the invoked name selects the tool.
 */
import path from 'node:path';

export const TOOL_NAME = 'outrigger';
export const SHIM_BINARY_NAME = 'containerd-shim-outrigger-v2';

/** Names under which the build links the one binary, and the argument vector each one stands for. */
export const LINK_ALIASES: Readonly<Record<string, readonly string[]>> = {
  [SHIM_BINARY_NAME]: ['shim'],
  'outrigger-zstd': ['zstd'],
  'outrigger-estargz': ['estargz'],
  'outrigger-imgcrypt': ['imgcrypt'],
  'outrigger-log': ['log'],
  // imgcrypt's decoder binary name, so existing [stream_processors] entries keep working.
  'ctd-decoder': ['imgcrypt', 'decrypt'],
};

export interface Invocation {
  /** Basename of the name the process was started as. */
  readonly invokedAs: string;
  /** Arguments for the `outrigger` command tree, the alias prefix already applied. */
  readonly args: readonly string[];
}

/**
 * The top-level commands, so that `outrigger-<cmd>` dispatches only to a real command: a copy
 * saved as e.g. `outrigger-linux-amd64` must behave as `outrigger`, not run a command called
 * `linux-amd64`. test/cli-invocation.test.ts checks this list against the command tree.
 */
export const TOP_LEVEL_COMMANDS: ReadonlySet<string> = new Set([
  'shim', 'zstd', 'estargz', 'imgcrypt', 'log', 'ttrpc', 'install', 'uninstall', 'config', 'doctor', 'sys-selftest',
]);

/**
 * Maps the invoked name and the user's arguments to the equivalent `outrigger ...` arguments.
 * Any `outrigger-<cmd>` name whose <cmd> is a top-level command means `outrigger <cmd>`; any
 * other name means plain `outrigger`.
 */
export function resolveInvocation(argv0: string, userArgs: readonly string[]): Invocation {
  const invokedAs = path.basename(argv0);
  const alias = LINK_ALIASES[invokedAs];
  if (alias) return { invokedAs, args: [...alias, ...userArgs] };
  const prefix = `${TOOL_NAME}-`;
  const command = invokedAs.startsWith(prefix) ? invokedAs.slice(prefix.length) : '';
  if (TOP_LEVEL_COMMANDS.has(command)) return { invokedAs, args: [command, ...userArgs] };
  return { invokedAs, args: [...userArgs] };
}
