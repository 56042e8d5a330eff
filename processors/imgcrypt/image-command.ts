/**
 * Declares `outrigger imgcrypt encrypt-image` and `decrypt-image` (OCI image-layout directories,
 * ctr-enc's recipient, key, --layer and --platform flags). The work is in image-crypt.ts.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type { Command } from 'commander';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { imgcryptGroup } from './command.ts';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function collectInt(value: string, previous: number[] | undefined): number[] {
  if (!/^-?\d+$/.test(value)) throw new CliError(`--layer ${value}: expected a layer index (negative counts from the top)`, ExitCode.usage);
  return [...(previous ?? []), Number(value)];
}

interface CommonRaw {
  readonly layer?: readonly number[];
  readonly platform?: readonly string[];
}

export interface RawEncryptImageOptions extends CommonRaw {
  readonly recipient?: readonly string[];
  readonly gpgKeyring?: readonly string[];
  readonly gpgHomedir?: string;
}

export interface RawDecryptImageOptions extends CommonRaw {
  readonly key?: readonly string[];
  readonly decryptionKeysPath?: string;
}

/** Public keyrings for `pgp:` names: the files given, else `gpg --export` (as ocicrypt asks gpg). */
function publicKeyrings(raw: RawEncryptImageOptions): { source: string; bytes: Uint8Array }[] {
  if ((raw.gpgKeyring ?? []).length > 0) {
    return raw.gpgKeyring!.map((file) => {
      try {
        return { source: file, bytes: fs.readFileSync(file) };
      } catch (error) {
        throw new CliError(`--gpg-keyring ${file}: ${(error as Error).message}`, ExitCode.usage);
      }
    });
  }
  if (!(raw.recipient ?? []).some((r) => r.startsWith('pgp:'))) return [];
  const args = ['--batch', ...(raw.gpgHomedir ? ['--homedir', raw.gpgHomedir] : []), '--export'];
  try {
    return [{ source: `gpg ${args.join(' ')}`, bytes: execFileSync('gpg', args, { stdio: ['ignore', 'pipe', 'pipe'] }) }];
  } catch (error) {
    throw new CliError(`pgp: recipients need a public keyring: give --gpg-keyring FILE or install gpg (${(error as Error).message})`);
  }
}

function report(summary: import('./image-crypt.ts').ImageCryptSummary, verb: string): void {
  const lines: string[] = [];
  for (const c of summary.changed) lines.push(`${verb} layer ${c.index} of ${c.manifest}: ${c.from} -> ${c.to} (${c.mediaType}${c.scheme ? `, key from ${c.scheme}` : ''})`);
  for (const k of summary.kept) lines.push(`kept layer ${k.index} of ${k.manifest} (${k.digest}): ${k.reason}`);
  for (const m of summary.manifestsSkipped) lines.push(`kept manifest ${m.digest}: ${m.reason}`);
  if (summary.changed.length === 0) lines.push(`nothing ${verb}: no selected layer needed it`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export async function runEncryptImage(src: string, dst: string, raw: RawEncryptImageOptions): Promise<void> {
  const { parseRecipients } = await import('./recipients.ts');
  const { cryptImage } = await import('./image-crypt.ts');
  if ((raw.recipient ?? []).length === 0) throw new CliError('no recipients: give at least one --recipient (jwe:pub.pem, pkcs7:cert.pem, pgp:name, provider:name)', ExitCode.usage);
  let ec;
  try {
    ec = parseRecipients(raw.recipient ?? [], { gpgPublicKeyrings: publicKeyrings(raw) });
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError((error as Error).message, ExitCode.usage);
  }
  try {
    const summary = await cryptImage({ src, dst, operation: { kind: 'encrypt', ec }, layers: raw.layer ?? [], platforms: raw.platform ?? [] });
    report(summary, 'encrypted');
  } catch (error) {
    throw new CliError(`encrypt-image: ${(error as Error).message}`, ExitCode.failure, { cause: error });
  }
}

export async function runDecryptImage(src: string, dst: string, raw: RawDecryptImageOptions): Promise<void> {
  const { DecryptConfigBuilder } = await import('./decrypt-config.ts');
  const { addKeySpecs } = await import('./key-spec.ts');
  const { cryptImage } = await import('./image-crypt.ts');
  const builder = new DecryptConfigBuilder();
  try {
    addKeySpecs(builder, raw.key ?? []);
  } catch (error) {
    throw new CliError((error as Error).message, ExitCode.usage);
  }
  if (raw.decryptionKeysPath) {
    for (const warning of builder.addKeysDirectory(raw.decryptionKeysPath)) process.stderr.write(`outrigger imgcrypt: ${warning}\n`);
  }
  try {
    const summary = await cryptImage({ src, dst, operation: { kind: 'decrypt', dc: builder.build() }, layers: raw.layer ?? [], platforms: raw.platform ?? [] });
    report(summary, 'decrypted');
  } catch (error) {
    throw new CliError(`decrypt-image: ${(error as Error).message}`, ExitCode.failure, { cause: error });
  }
}

export function defineImgcryptImages(program: Command): void {
  const group = imgcryptGroup(program);
  group
    .command('encrypt-image')
    .description('encrypt the layers of an OCI image-layout directory (skopeo oci:DIR form) for the given recipients')
    .argument('<src>', 'source OCI image-layout directory')
    .argument('<dst>', 'destination directory (created; may equal SRC)')
    .option('--recipient <spec>', 'jwe:PUBKEY, pkcs7:CERT, pgp:NAME-OR-EMAIL or provider:NAME[:PARAMS] (repeatable)', collect)
    .option('--layer <n>', 'only this layer index of each manifest, negative counts from the top (repeatable; default all)', collectInt)
    .option('--platform <os/arch[/variant]>', 'only manifests of this platform (repeatable; default all)', collect)
    .option('--gpg-keyring <file>', 'binary OpenPGP public keyring for pgp: recipients (repeatable; default: gpg --export)', collect)
    .option('--gpg-homedir <dir>', 'GnuPG home for the gpg --export fallback')
    .action(async (src: string, dst: string, options: RawEncryptImageOptions) => {
      await runEncryptImage(src, dst, options);
    });
  group
    .command('decrypt-image')
    .description('decrypt the encrypted layers of an OCI image-layout directory')
    .argument('<src>', 'source OCI image-layout directory')
    .argument('<dst>', 'destination directory (created; may equal SRC)')
    .option('--key <spec>', 'FILE, FILE:pass=PW, FILE:file=PWFILE, FILE:fd=N, FILE:PW or provider:NAME[:PARAMS] (repeatable); pkcs7 needs the certificate too', collect)
    .option('--decryption-keys-path <dir>', 'also load every usable key file in this directory')
    .option('--layer <n>', 'only this layer index of each manifest, negative counts from the top (repeatable; default all)', collectInt)
    .option('--platform <os/arch[/variant]>', 'only manifests of this platform (repeatable; default all)', collect)
    .action(async (src: string, dst: string, options: RawDecryptImageOptions) => {
      await runDecryptImage(src, dst, options);
    });
}
