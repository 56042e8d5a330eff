/**
 * Declares `outrigger zstd` (also reached as `outrigger-zstd`). Only option declarations live
 * here; the implementation is imported when the command runs, so other tools do not load it.
 */
import type { Command } from 'commander';
import type { RawZstdOptions } from './options.ts';

function count(_value: string, previous: number): number {
  return previous + 1;
}

export function defineZstd(program: Command): void {
  program
    .command('zstd')
    .description('zstd/gzip decompression stream processor and zstd-compatible pipe')
    .usage('[options] [-#] [INPUT... | -] [-o OUTPUT]')
    .argument('[inputs...]', "files to (de)compress; '-' or none means stdin")
    .option('-d, --decompress', 'decompress (zstd or gzip input, told apart by magic bytes)')
    .option('-z, --compress', 'compress (default unless -d or -t)')
    .option('-t, --test', 'decompress and discard: check integrity')
    .option('-c, --stdout', 'write to stdout and keep the inputs')
    .option('-o, --output <file>', 'write all output to FILE')
    .option('-f, --force', 'overwrite outputs, read a terminal; with -dc pass input that is not zstd/gzip through unchanged')
    .option('-k, --keep', 'keep input files (the default)')
    .option('--rm', 'remove input files after success')
    .option('-q, --quiet', 'suppress warnings', count, 0)
    .option('-v, --verbose', 'report sizes and frames on stderr', count, 0)
    .option('--long [windowLog]', 'compress: long-distance matching with this window log (default 27); decompress: accept windows up to 2^windowLog')
    .option('-M, --memory <size>', 'decompress: largest window accepted, e.g. 512MiB (default 128MiB, the zstd CLI limit)')
    .option('--no-check', 'compress without a content checksum')
    .option('--ultra', 'allow levels -20 to -22')
    .option('-T, --threads <n>', 'accepted for zstd compatibility and ignored (single-threaded streaming)')
    .option('--buffer <size>', 'read/decode chunk size (default 1MiB: the speed/memory balance measured in the README)')
    .option('--log-file <path>', 'stream-processor mode: append one line per layer (ok or error) to this file')
    .addHelpText(
      'after',
      `
Levels: -1 ... -19 (default -3), -20 ... -22 with --ultra; give a level as its own argument.

Stream-processor mode: when containerd runs this binary from [stream_processors] it sets
STREAM_PROCESSOR_MEDIATYPE; the layer is then read from stdin and the tar written to stdout.
Accepted media types: application/vnd.oci.image.layer.v1.tar+zstd, ...tar+gzip, their
nondistributable variants and application/vnd.docker.image.rootfs.diff.tar.gzip.`,
    )
    .allowUnknownOption()
    .action(async (inputs: string[], options: RawZstdOptions) => {
      const { runZstd } = await import('./run.ts');
      await runZstd(inputs, options);
    });
}
