/** The `install`, `uninstall` and `config` commands. */
import { isSea } from 'node:sea';
import type { Command } from 'commander';
import {
  type ContainerdMajor,
  DEFAULT_LOG_DIR,
  DEFAULT_PROCESSORS,
  DEFAULT_RUNTIME_NAME,
  type ProcessorName,
  checkProcessorSet,
  configSnippet,
  runtimeOptionsPathFor,
} from '../containerd-config/entries.ts';
import { CliError, ExitCode } from '../cli/exit-codes.ts';
import { detectContainerdVersion, majorFromFlag } from './containerd-version.ts';

export const DEFAULT_PREFIX = '/usr/local';
export const DEFAULT_CONTAINERD_CONFIG = '/etc/containerd/config.toml';

function processorList(value: string): ProcessorName[] {
  const names = value.split(',').map((s) => s.trim()).filter((s) => s !== '') as ProcessorName[];
  try {
    checkProcessorSet(names);
  } catch (err) {
    throw new CliError(`--processors: ${(err as Error).message}`, ExitCode.usage);
  }
  return names;
}

function major(flag: string | undefined, containerdBinary: string): ContainerdMajor | undefined {
  if (flag !== undefined) {
    try {
      return majorFromFlag(flag);
    } catch (err) {
      throw new CliError((err as Error).message, ExitCode.usage);
    }
  }
  return detectContainerdVersion(containerdBinary)?.major;
}

function sourceBinary(explicit: string | undefined): string {
  if (explicit !== undefined) return explicit;
  if (isSea()) return process.execPath;
  throw new CliError('install copies the outrigger binary it runs as; from source, pass --binary dist/bin/outrigger', ExitCode.usage);
}

function failure(err: unknown): never {
  if (err instanceof CliError) throw err;
  throw new CliError((err as Error).message, ExitCode.failure, { cause: err });
}

interface InstallFlags {
  prefix: string;
  containerdConfig: string;
  dryRun?: boolean;
  runtimeName: string;
  processors: ProcessorName[];
  containerdVersion?: string;
  containerd: string;
  binary?: string;
  logDir: string;
}

export function defineInstall(program: Command): void {
  program
    .command('install')
    .description("install the binary and its links under a prefix and merge outrigger's entries into containerd's config.toml")
    .option('--prefix <dir>', 'install below DIR (binary and links in DIR/bin)', DEFAULT_PREFIX)
    .option('--containerd-config <path>', "containerd's config file", DEFAULT_CONTAINERD_CONFIG)
    .option('--dry-run', 'print what would change and the config diff; write nothing')
    .option('--runtime-name <name>', 'CRI runtime handler name (the RuntimeClass handler)', DEFAULT_RUNTIME_NAME)
    .option('--processors <list>', 'stream processors to configure: zstd,gzip,estargz,imgcrypt', processorList, [...DEFAULT_PROCESSORS])
    .option('--containerd-version <major>', "1.6, 1.7 or 2.x; only needed when the config file has no 'version' (default: ask containerd)")
    .option('--containerd <path>', 'containerd binary asked for its version', 'containerd')
    .option('--binary <path>', 'binary to install (default: the running outrigger executable)')
    .option('--log-dir <dir>', 'where the stream processors append their per-layer log lines', DEFAULT_LOG_DIR)
    .action(async (flags: InstallFlags) => {
      // Loaded on use: every tool's start-up builds this command tree.
      const { install } = await import('./install.ts');
      try {
        const containerdMajor = major(flags.containerdVersion, flags.containerd);
        const report = install({
          prefix: flags.prefix,
          containerdConfig: flags.containerdConfig,
          dryRun: flags.dryRun === true,
          runtimeName: flags.runtimeName,
          processors: flags.processors,
          sourceBinary: sourceBinary(flags.binary),
          logDir: flags.logDir,
          ...(containerdMajor ? { containerdMajor } : {}),
        });
        process.stdout.write(`${report.lines.join('\n')}\n${report.diff}`);
      } catch (err) {
        failure(err);
      }
    });
}

export function defineUninstall(program: Command): void {
  program
    .command('uninstall')
    .description('undo what install recorded under the prefix: entries in config.toml, binary, links')
    .option('--prefix <dir>', 'the prefix install used', DEFAULT_PREFIX)
    .option('--dry-run', 'print what would be removed and the config diff; write nothing')
    .action(async (flags: { prefix: string; dryRun?: boolean }) => {
      const { uninstall } = await import('./install.ts');
      try {
        const report = uninstall({ prefix: flags.prefix, dryRun: flags.dryRun === true });
        process.stdout.write(`${report.lines.join('\n')}\n${report.diff}`);
      } catch (err) {
        failure(err);
      }
    });
}

export function defineConfig(program: Command): void {
  program
    .command('config')
    .description("print the config.toml entries install would add, for one containerd major version")
    .option('--containerd-version <major>', '1.6, 1.7 or 2.x (default: ask containerd)')
    .option('--containerd <path>', 'containerd binary asked for its version', 'containerd')
    .option('--prefix <dir>', 'where the binary and links are', DEFAULT_PREFIX)
    .option('--runtime-name <name>', 'CRI runtime handler name', DEFAULT_RUNTIME_NAME)
    .option('--processors <list>', 'zstd,gzip,estargz,imgcrypt', processorList, [...DEFAULT_PROCESSORS])
    .action((flags: { containerdVersion?: string; containerd: string; prefix: string; runtimeName: string; processors: ProcessorName[] }) => {
      const m = major(flags.containerdVersion, flags.containerd);
      if (m === undefined) {
        throw new CliError(`cannot tell the containerd version ('${flags.containerd} --version' failed or is unknown); pass --containerd-version 1.6|1.7|2.x`, ExitCode.usage);
      }
      process.stdout.write(
        configSnippet({ major: m, prefix: flags.prefix, processors: flags.processors, runtimeName: flags.runtimeName, runtimeOptionsPath: runtimeOptionsPathFor(flags.prefix) }),
      );
    });
}
