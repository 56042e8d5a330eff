/**
 * Declares `outrigger log` (reached as outrigger-log): the logging driver a binary:// stdio URI
 * names. Arguments are the URI's query as bare `key value` pairs, so commander only passes
 * them through; the driver is loaded when the command runs.
 */
import type { Command } from 'commander';
import { LOG_ARGS_USAGE } from './log-args.ts';

export function defineLog(program: Command): void {
  program
    .command('log')
    .description('logging driver for binary:// and binary-v2:// stdio URIs (CRI or JSON lines, rotation)')
    .usage(LOG_ARGS_USAGE)
    .argument('[args...]', 'key value pairs, as the shim passes a binary:// query')
    .helpOption('--help', 'show this help')
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText(
      'after',
      '\nStarted by a shim, e.g. ctr run --log-uri "binary:///usr/local/bin/outrigger-log?path=/var/log/c.log&format=cri&maxSize=10MB" …\n' +
        'Reads the container stdout on fd 3, stderr on fd 4; writes one byte to fd 5 when ready.',
    )
    .action(async (args: string[]) => {
      const { runLogDriver } = await import('./log-driver.ts');
      await runLogDriver(args);
    });
}
