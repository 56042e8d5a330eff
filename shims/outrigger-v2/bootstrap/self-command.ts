/**
 * How to run this binary again as the shim daemon. In the SEA, the same executable under the
 * shim's link name (argv0 selects the tool, node-sea.md §3); from source, node with the CLI
 * entry script and the `shim` command.
 */
import { isSea } from 'node:sea';
import { SHIM_BINARY_NAME } from '../../../src/cli/invocation.ts';

export interface SelfCommand {
  readonly file: string;
  readonly args: readonly string[];
  readonly argv0: string | undefined;
}

export function selfCommand(shimArgs: readonly string[]): SelfCommand {
  if (isSea()) return { file: process.execPath, args: [...shimArgs], argv0: SHIM_BINARY_NAME };
  const script = process.argv[1];
  if (script === undefined) throw new Error('shim start: cannot tell which script to run the daemon from');
  return { file: process.execPath, args: [...process.execArgv, script, 'shim', ...shimArgs], argv0: undefined };
}
