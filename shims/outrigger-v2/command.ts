/**
 * Declares `outrigger shim` (reached as containerd-shim-outrigger-v2). containerd passes
 * Go-style single-dash flags, so commander only hands the raw arguments over (shim flags are
 * parsed by ./flags.ts); the implementation is imported when the command runs.
 */
import type { Command } from 'commander';
import { SHIM_USAGE } from './flags.ts';

export function defineShim(program: Command): void {
  program
    .command('shim')
    .description('containerd runtime v2 shim (io.containerd.outrigger.v2)')
    .usage('[-namespace NS] [-address ADDR] [-publish-binary PATH] [-id ID] [-bundle DIR] [-debug] [-v] [start|delete]')
    .argument('[args...]', 'Go-style shim flags and the action, as containerd passes them')
    .helpOption('--help', 'show this help')
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText('after', `\n${SHIM_USAGE.split('\n').slice(2).join('\n')}`)
    .action(async (args: string[]) => {
      const { runShim } = await import('./main.ts');
      await runShim(args);
    });
}
