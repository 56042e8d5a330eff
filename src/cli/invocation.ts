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
 * Maps the invoked name and the user's arguments to the equivalent `outrigger ...` arguments.
 * Any other `outrigger-<cmd>` name means `outrigger <cmd>`, so a new tool needs no table entry
 * to be reachable by link.
 */
export function resolveInvocation(argv0: string, userArgs: readonly string[]): Invocation {
  const invokedAs = path.basename(argv0);
  const alias = LINK_ALIASES[invokedAs];
  if (alias) return { invokedAs, args: [...alias, ...userArgs] };
  const prefix = `${TOOL_NAME}-`;
  if (invokedAs.startsWith(prefix) && invokedAs.length > prefix.length) {
    return { invokedAs, args: [invokedAs.slice(prefix.length), ...userArgs] };
  }
  return { invokedAs, args: [...userArgs] };
}
