/**
 * Entry point of the `outrigger` binary (bundled by scripts/build.ts into the SEA, or run from
 * source with `node src/cli/main.ts`). Resolves the invoked name, runs the command tree and maps
 * every failure to a one-line message and a non-zero status.
 */
import { isSea } from 'node:sea';
import { CommanderError } from 'commander';
import { CliError, ExitCode } from './exit-codes.ts';
import { resolveInvocation, TOOL_NAME } from './invocation.ts';
import { buildProgram, exitCodeOf } from './program.ts';

/**
 * Inside a SEA, argv is [execPath, invokedName, ...args]; from source it is
 * [node, script, ...args] and the script stands for the plain `outrigger` name
 * unless OUTRIGGER_ARGV0 names a link (tests of the dispatch use that).
 */
function invokedName(): string {
  if (isSea()) return process.argv0;
  return process.env.OUTRIGGER_ARGV0 ?? TOOL_NAME;
}

async function main(): Promise<number> {
  const invocation = resolveInvocation(invokedName(), process.argv.slice(2));
  const program = buildProgram();
  try {
    await program.parseAsync([...invocation.args], { from: 'user' });
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) return exitCodeOf(err);
    if (err instanceof CliError) {
      process.stderr.write(`${TOOL_NAME}: ${err.message}\n`);
      return err.exitCode;
    }
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`${TOOL_NAME}: internal error: ${detail}\n`);
    return ExitCode.failure;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${TOOL_NAME}: fatal: ${String(err)}\n`);
    process.exitCode = ExitCode.failure;
  },
);
