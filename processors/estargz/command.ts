/**
 * Declares `outrigger estargz ...` (also reached as `outrigger-estargz`). Only option
 * declarations live here; each action imports its implementation when it runs.
 */
import type { Command } from 'commander';
import type { RawBuildOptions } from './run-build.ts';
import type { RawUnpackOptions } from './run-unpack.ts';
import type { RawInspectOptions } from './run-inspect.ts';
import type { RawConvertOptions } from './convert-image.ts';

export const TOC_DIGEST_ENV = 'OUTRIGGER_ESTARGZ_TOC_DIGEST';

export function defineEstargz(program: Command): void {
  const estargz = program
    .command('estargz')
    .description('eStargz (lazy-pullable gzip layer) converter and verifying unpack processor')
    // containerd sets STREAM_PROCESSOR_MEDIATYPE for a processor: a [stream_processors] entry
    // that names `outrigger-estargz` without args still gets the unpack processor, never help
    // text on the layer's stdout.
    .action(async () => {
      if (process.env.STREAM_PROCESSOR_MEDIATYPE === undefined) {
        estargz.help({ error: true });
      }
      const { runUnpack } = await import('./run-unpack.ts');
      await runUnpack({});
    });

  estargz
    .command('build')
    .description('convert a tar, tar.gz or tar.zst layer to eStargz')
    .argument('[input]', "input layer; '-' or none means stdin")
    .option('-o, --output <file>', "write the blob to FILE ('-' = stdout, the default)")
    .option('--report <file>', 'write the JSON report (tocDigest, diffId, uncompressedSize, ...) to FILE instead of stderr')
    .option('--chunk-size <bytes>', 'split regular files into chunks of this size (default 4194304, as upstream; 0 = default)')
    .option('--level <n>', 'gzip level 0-9 (default 9) or with --zstdchunked zstd level 1-22 (default 3), as upstream')
    .option('--zstdchunked', "stargz-snapshotter's zstd:chunked (tar+zstd) instead of eStargz")
    .option('--prioritized-files <file>', 'paths (one per line) to put first, followed by .prefetch.landmark')
    .option('--no-progress', 'no progress bar on a terminal stderr')
    .action(async (input: string | undefined, options: RawBuildOptions) => {
      const { runBuild } = await import('./run-build.ts');
      await runBuild(input, options);
    });

  estargz
    .command('convert-image')
    .description('convert every tar/tar+gzip layer of an OCI image layout (directory or .tar) to eStargz')
    .argument('<src>', 'OCI image layout: a directory or a tar of one')
    .argument('<dst>', 'where to write the converted layout (a tar when it ends in .tar)')
    .option('--format <dir|tar>', 'force the output form')
    .option('--chunk-size <bytes>', 'chunk size (default 4194304, as upstream)')
    .option('--level <n>', 'gzip level 0-9 (default 9) or zstd level 1-22 (default 3)')
    .option('--zstdchunked', "layers as stargz-snapshotter's zstd:chunked (tar+zstd)")
    .action(async (src: string, dst: string, options: RawConvertOptions) => {
      const { runConvertImage } = await import('./convert-image.ts');
      await runConvertImage(src, dst, options);
    });

  estargz
    .command('unpack')
    .description('stream processor: eStargz / legacy stargz / zstd:chunked (or plain gzip, zstd) layer on stdin → verified tar on stdout')
    .option('--toc-digest <digest>', `require an eStargz or zstd:chunked layer whose TOC has this sha256 (also from $${TOC_DIGEST_ENV})`)
    .option('--log-file <path>', 'append one line per layer (ok or error) to this file')
    .addHelpText(
      'after',
      `
The output is exactly the gunzipped layer (containerd checks it against the config's diff_id),
landmark and stargz.index.json entries included. For an eStargz layer every chunk and file
digest is checked against the TOC before the last bytes (the TOC entry) are released; on a
mismatch the output is cut short and the exit status is non-zero. Ordinary gzip layers pass
through decompressed. zstd layers (told apart by their magic bytes) are decoded the same way:
a zstd:chunked layer (stargz-snapshotter's or containers/storage's) is checked chunk by chunk
against the TOC in its skippable frame; plain zstd passes through. Configure it under
[stream_processors] accepting the tar+gzip media types and returning
application/vnd.oci.image.layer.v1.tar (outrigger-zstd verifies zstd:chunked for tar+zstd).`,
    )
    .action(async (options: RawUnpackOptions) => {
      const { runUnpack } = await import('./run-unpack.ts');
      await runUnpack(options);
    });

  estargz
    .command('ls')
    .description('list the TOC of an eStargz or zstd:chunked blob')
    .argument('<blob>', 'eStargz or zstd:chunked blob file')
    .option('--json', 'print the TOC JSON as stored')
    .action(async (blob: string, options: RawInspectOptions) => {
      const { runLs } = await import('./run-inspect.ts');
      await runLs(blob, options);
    });

  estargz
    .command('verify')
    .description('check every chunk of an eStargz or zstd:chunked blob against its TOC')
    .argument('<blob>', 'eStargz or zstd:chunked blob file')
    .option('--toc-digest <digest>', 'also require this TOC digest')
    .action(async (blob: string, options: RawInspectOptions) => {
      const { runVerify } = await import('./run-inspect.ts');
      await runVerify(blob, options);
    });
}
