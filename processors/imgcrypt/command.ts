/**
 * Declares `outrigger imgcrypt decrypt` (also reached as `ctd-decoder` and
 * `outrigger-imgcrypt decrypt`) and `outrigger imgcrypt encrypt`. Only options live here; the
 * implementation loads when a command runs. Other imgcrypt commands attach to the same group
 * through imgcryptGroup().
 */
import type { Command } from 'commander';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The `imgcrypt` group, created once whichever define function runs first. */
export function imgcryptGroup(program: Command): Command {
  return program.commands.find((c) => c.name() === 'imgcrypt') ?? program.command('imgcrypt').description('ocicrypt layer encryption: containerd decoder and encryption tools');
}

export function defineImgcrypt(program: Command): void {
  const group = imgcryptGroup(program);
  group
    .command('decrypt')
    .description('decrypt an ocicrypt layer from stdin to stdout; containerd stream processor, ctd-decoder compatible')
    .option('--decryption-keys-path <dir>', 'load decryption keys from this directory (symlinks followed; unusable files skipped with a warning)')
    .option('--key <spec>', 'a private key: FILE, FILE:pass=PW, FILE:file=PWFILE, FILE:fd=N, FILE:PW or provider:NAME[:PARAMS] (repeatable)', collect)
    .option('--decompress', 'fused mode: also gunzip/unzstd the plaintext (for an entry whose returns is the plain tar type)')
    .option('--payload <file>', 'read the containerd payload from FILE instead of fd 3 (running by hand)')
    .option('--annotations <file>', 'without a payload: the layer descriptor or its annotations as JSON (what `imgcrypt encrypt` writes)')
    .option('--containerd-address <socket>', "without a payload: buffer the layer and find its descriptor in this containerd's content store (gRPC)")
    .option('--containerd-namespace <ns>', 'with --containerd-address: search only this namespace (default: all)')
    // ctd-decoder ignores positional arguments; so do we, rather than fail a working config.
    .allowExcessArguments()
    .addHelpText(
      'after',
      `
Stream-processor mode: containerd sets STREAM_PROCESSOR_MEDIATYPE (…tar+encrypted, …tar+gzip+encrypted,
…tar+zstd+encrypted) and passes the layer descriptor and any keys as a payload on fd 3, but only to the
ids io.containerd.ocicrypt.decoder.v1.tar and io.containerd.ocicrypt.decoder.v1.tar.gzip. Nothing is
written past a 64 KiB hold-back until the layer's HMAC matched; a wrong key or corrupt layer exits 1
with the schemes and key files tried. See docs/imgcrypt.md.`,
    )
    // No declared arguments: commander passes (options, command), excess arguments or not.
    .action(async (options: import('./decrypt-processor.ts').RawDecryptOptions) => {
      const { runDecrypt } = await import('./decrypt-processor.ts');
      await runDecrypt(options);
    });
  group
    .command('encrypt')
    .description('encrypt one layer blob from stdin to stdout; the descriptor annotations go to --annotations FILE or stderr')
    .option('--recipient <spec>', 'jwe:PUBKEY, pkcs7:CERT, pgp:NAME or provider:NAME[:PARAMS] (repeatable)', collect)
    .option('--annotations <file>', 'write the new descriptor (digest, size, annotations) as JSON here instead of stderr')
    .option('--media-type <type>', "the blob's media type; the descriptor then carries its +encrypted type")
    .option('--digest <digest>', "the source descriptor's digest to record in the private options (default: digest of the input)")
    .action(async (options: import('./encrypt-command.ts').RawEncryptOptions) => {
      const { runEncrypt } = await import('./encrypt-command.ts');
      await runEncrypt(options);
    });
}
