/**
 * Entry of `outrigger shim` / containerd-shim-outrigger-v2: parses containerd's Go-style flags
 * and runs the action: `start` (bootstrap/start.ts), `delete` (bootstrap/delete.ts), or, with no
 * action, the long-running daemon (daemon.ts).
 */
import { buildInfo } from '../../src/cli/build-info.ts';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { SHIM_BINARY_NAME } from '../../src/cli/invocation.ts';
import { parseShimFlags, requireFlags, SHIM_USAGE, ShimFlagError } from './flags.ts';
import type { ShimFlags } from './flags.ts';

/** What `-v` prints, in the Go shims' layout. */
export function versionText(): string {
  return `${SHIM_BINARY_NAME}:\n  Version:  ${buildInfo.version}\n  Revision: ${buildInfo.commit}\n  Node version: ${buildInfo.node}\n\n`;
}

export async function runShim(args: readonly string[]): Promise<void> {
  let flags: ShimFlags;
  try {
    flags = parseShimFlags(args);
    if (flags.version) {
      process.stdout.write(versionText());
      return;
    }
    if (flags.help) {
      process.stdout.write(SHIM_USAGE);
      return;
    }
    requireFlags(flags);
  } catch (err) {
    if (err instanceof ShimFlagError) throw new CliError(err.message, ExitCode.usage);
    throw err;
  }
  switch (flags.action) {
    case 'start': {
      const { runStart } = await import('./bootstrap/start.ts');
      await runStart(flags);
      return;
    }
    case 'delete': {
      const { runDelete } = await import('./bootstrap/delete.ts');
      await runDelete(flags);
      return;
    }
    case 'serve': {
      const { runDaemon } = await import('./daemon.ts');
      await runDaemon(flags);
      return;
    }
  }
}
