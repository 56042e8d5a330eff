/**
 * `outrigger sys-selftest` (hidden): runs src/sys's scenario checks in this very binary and
 * prints them as JSON, so a test can prove the node:ffi calls work inside the SEA and not only
 * under plain node. Exit 0 only when every scenario passed.
 */
import type { Command } from 'commander';
import { CliError, ExitCode } from '../cli/exit-codes.ts';

export function defineSysSelftest(program: Command): void {
  program
    .command('sys-selftest', { hidden: true })
    .description('check the syscalls of src/sys (subreaper, waitpid, SCM_RIGHTS, ioctl, eventfd, SO_PEERCRED) and print JSON')
    .action(async () => {
      // Loaded here so that no other command pays for it at start-up.
      const { runSysSelftest } = await import('./selftest.ts');
      const results = await runSysSelftest();
      const failed = results.filter((r) => !r.ok);
      process.stdout.write(`${JSON.stringify({ ok: failed.length === 0, results }, null, 2)}\n`);
      if (failed.length > 0) {
        throw new CliError(`sys-selftest: ${failed.length} of ${results.length} scenarios failed: ${failed.map((r) => r.name).join(', ')}`, ExitCode.failure);
      }
    });
}
