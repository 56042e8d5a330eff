/** `outrigger doctor`: checks a node for what the shim and processors need; exit 1 on any error. */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CliError, ExitCode } from '../cli/exit-codes.ts';
import { DEFAULT_CONTAINERD_CONFIG } from '../install/commands.ts';
import { formatFindings, hasErrors } from './findings.ts';

/** PATH a systemd service gets when its unit sets none (systemd.exec(5)), which is containerd's usual case. */
export const SYSTEMD_DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface DoctorFlags {
  containerdConfig: string;
  containerd: string;
  ctr: string;
  path?: string;
  keysDir: string;
  socket?: string;
  smokeImage?: string;
  namespace: string;
  json?: boolean;
}

/** containerd also looks for shims next to its own binary (shim-protocol.md §2.1). */
function containerdSearchPath(flags: DoctorFlags, findOnPath: (name: string, searchPath: string) => string | undefined): string {
  const base = flags.path ?? SYSTEMD_DEFAULT_PATH;
  const bin = findOnPath(flags.containerd, base) ?? findOnPath(flags.containerd, process.env.PATH ?? '');
  if (!bin) return base;
  return `${base}:${path.dirname(fs.realpathSync(bin))}`;
}

export function defineDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check containerd, its config, the shim, runc/crun, cgroups, keys and stream processors; each problem with its fix')
    .option('--containerd-config <path>', "containerd's config file", DEFAULT_CONTAINERD_CONFIG)
    .option('--containerd <path>', 'containerd binary', 'containerd')
    .option('--ctr <path>', 'ctr binary for the live test', 'ctr')
    .option('--path <PATH>', `containerd's PATH (default: systemd's default ${SYSTEMD_DEFAULT_PATH})`)
    .option('--keys-dir <dir>', 'ocicrypt private keys directory', '/etc/containerd/ocicrypt/keys')
    .option('--socket <path>', 'live test: containerd socket to query')
    .option('--smoke-image <ref>', 'live test: run this image (already pulled) under the outrigger runtime')
    .option('--namespace <ns>', 'containerd namespace for the live test', 'default')
    .option('--json', 'print the findings as JSON')
    .action(async (flags: DoctorFlags) => {
      // The checks reach the shim's option schemas (protobuf registries): load them only for doctor.
      const { findOnPath, runChecks } = await import('./checks.ts');
      const findings = runChecks({
        containerdBinary: flags.containerd,
        ctrBinary: flags.ctr,
        containerdConfig: flags.containerdConfig,
        containerdPath: containerdSearchPath(flags, findOnPath),
        keysDir: flags.keysDir,
        cgroupRoot: '/sys/fs/cgroup',
        namespace: flags.namespace,
        ...(flags.socket ? { socket: flags.socket } : {}),
        ...(flags.smokeImage ? { smokeImage: flags.smokeImage } : {}),
      });
      process.stdout.write(flags.json ? `${JSON.stringify(findings, null, 2)}\n` : formatFindings(findings));
      if (hasErrors(findings)) throw new CliError(`doctor found ${findings.filter((f) => f.severity === 'error').length} error(s)`, ExitCode.failure);
    });
}
