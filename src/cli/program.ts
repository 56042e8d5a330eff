/**
 * The `outrigger` command tree. Each tool contributes a `define` function that declares its
 * options cheaply and loads its implementation only when its action runs, so a shim start does
 * not pay for parsing imgcrypt's code.
 */
import { Command, CommanderError } from 'commander';
import { versionLine } from './build-info.ts';
import { ExitCode } from './exit-codes.ts';
import { TOOL_NAME } from './invocation.ts';
import { commandDefinitions } from './commands.ts';
import { formatCommandIndex } from './command-index.ts';

export function buildProgram(): Command {
  const program = new Command(TOOL_NAME)
    .description('containerd runtime shim and stream processors in one binary')
    .version(versionLine(), '-V, --version', 'print outrigger version, embedded Node version and git commit')
    .helpCommand(true)
    .showSuggestionAfterError(true)
    .exitOverride();
  for (const define of commandDefinitions) define(program);
  program.addHelpText('after', () => formatCommandIndex(program));
  return program;
}

/** Turns commander's own exits (help, version, usage errors) into our exit statuses. */
export function exitCodeOf(err: CommanderError): ExitCode {
  if (err.exitCode === 0) return ExitCode.ok;
  return ExitCode.usage;
}
