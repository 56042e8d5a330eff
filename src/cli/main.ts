/**
 * Entry point of the `outrigger` binary (bundled by scripts/build.ts into the SEA, or run from
 * source with `node src/cli/main.ts`). Resolves the invoked name, runs the command tree and maps
 * every failure to a one-line message and a non-zero status.
 */
import { isSea } from 'node:sea';
import { CliError, ExitCode } from './exit-codes.ts';
import { resolveInvocation, TOOL_NAME } from './invocation.ts';

/**
 * Inside a SEA, argv is [execPath, invokedName, ...args]; from source it is
 * [node, script, ...args] and the script stands for the plain `outrigger` name
 * unless OUTRIGGER_ARGV0 names a link (tests of the dispatch use that).
 */
function invokedName(): string {
  if (isSea()) return process.argv0;
  return process.env.OUTRIGGER_ARGV0 ?? TOOL_NAME;
}

/**
 * containerd runs the shim binary for `start`, the daemon and `delete` of every task, and waits
 * for each. The shim parses its Go-style flags itself, so those runs skip commander and the
 * command tree (every tool's define module) and load only the shim's code. `--help` still goes
 * through commander for the command's help text; `--` keeps commander's handling.
 */
function isDirectShimRun(args: readonly string[]): boolean {
  return args[0] === 'shim' && !args.includes('--help') && !args.includes('--');
}

/**
 * `estargz unpack`, the tar+gzip stream processor: its inflate worker boots while commander
 * parses, rather than after (processors/estargz/unpack-prestart.ts).
 */
function isLayerUnpackRun(args: readonly string[]): boolean {
  return args[0] === 'estargz' && args[1] === 'unpack' && !args.includes('--help') && !args.includes('-h');
}

/** What a shell reports for a writer killed by SIGPIPE (128 + 13), as `yes | true` shows. */
const EXIT_BROKEN_PIPE = 141;

/**
 * Text for people (help, version, listings) goes through process.stdout; a reader that closed
 * early (`outrigger --help | head -1`) must end us quietly, not with an unhandled-error stack.
 * Tools that stream data own their output fd and report EPIPE themselves.
 */
function exitQuietlyOnBrokenStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(EXIT_BROKEN_PIPE);
  });
}

async function runCommandTree(args: readonly string[]): Promise<number> {
  exitQuietlyOnBrokenStdout();
  const [{ CommanderError }, { buildProgram, exitCodeOf }] = await Promise.all([import('commander'), import('./program.ts')]);
  try {
    await buildProgram().parseAsync([...args], { from: 'user' });
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) return exitCodeOf(err);
    throw err;
  }
}

async function main(): Promise<number> {
  const invocation = resolveInvocation(invokedName(), process.argv.slice(2));
  try {
    if (isDirectShimRun(invocation.args)) {
      const { runShim } = await import('../../shims/outrigger-v2/main.ts');
      await runShim(invocation.args.slice(1));
      return ExitCode.ok;
    }
    if (isLayerUnpackRun(invocation.args)) {
      const { prepareUnpackProcess } = await import('../../processors/estargz/unpack-prestart.ts');
      prepareUnpackProcess();
    }
    return await runCommandTree(invocation.args);
  } catch (err) {
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
