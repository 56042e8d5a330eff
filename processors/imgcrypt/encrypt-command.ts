/**
 * `outrigger imgcrypt encrypt`: encrypts one layer blob from stdin to stdout for the given
 * recipients and writes the new descriptor (media type, digest, size, annotations) as JSON to
 * `--annotations FILE`, or to stderr. `imgcrypt decrypt --annotations FILE` reads it back.
 */
import fs from 'node:fs';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { openStdout } from '../zstd/io.ts';
import { encryptLayerStream } from './layer-crypto.ts';
import { encryptedMediaType } from './media-types.ts';
import { parseRecipients } from './recipients.ts';

export interface RawEncryptOptions {
  readonly recipient?: readonly string[];
  readonly annotations?: string;
  readonly mediaType?: string;
  readonly digest?: string;
}

export async function runEncrypt(raw: RawEncryptOptions): Promise<void> {
  let ec;
  try {
    ec = parseRecipients(raw.recipient ?? []);
  } catch (err) {
    throw new CliError((err as Error).message, ExitCode.usage);
  }
  if ((raw.recipient ?? []).length === 0) throw new CliError('no recipients: give at least one --recipient (jwe:pub.pem, pkcs7:cert.pem, pgp:name, provider:name)', ExitCode.usage);
  let mediaType: string | undefined;
  if (raw.mediaType !== undefined) {
    try {
      mediaType = encryptedMediaType(raw.mediaType);
    } catch (err) {
      throw new CliError(`--media-type: ${(err as Error).message}`, ExitCode.usage);
    }
  }
  if (raw.digest !== undefined && !/^sha256:[0-9a-f]{64}$/.test(raw.digest)) throw new CliError(`--digest ${raw.digest}: expected sha256:<64 hex digits>`, ExitCode.usage);
  // Opened first, so a bad path fails before any input is consumed.
  let annotationsFd: number | undefined;
  if (raw.annotations !== undefined) {
    try {
      annotationsFd = fs.openSync(raw.annotations, 'w', 0o644);
    } catch (err) {
      throw new CliError(`--annotations ${raw.annotations}: ${(err as Error).message}`);
    }
  }
  try {
    const result = await encryptLayerStream(process.stdin, openStdout(1024 * 1024), ec, raw.digest !== undefined ? { sourceDigest: raw.digest } : {});
    const descriptor = { ...(mediaType !== undefined ? { mediaType } : {}), digest: result.digest, size: result.size, annotations: result.annotations };
    const text = `${JSON.stringify(descriptor, null, 2)}\n`;
    if (annotationsFd !== undefined) fs.writeSync(annotationsFd, text);
    else process.stderr.write(text);
  } catch (err) {
    throw new CliError(`encrypt: ${(err as Error).message}`, ExitCode.failure, { cause: err });
  } finally {
    if (annotationsFd !== undefined) fs.closeSync(annotationsFd);
  }
}
