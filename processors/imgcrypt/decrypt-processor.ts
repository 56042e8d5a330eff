/**
 * `outrigger imgcrypt decrypt` / `ctd-decoder`: decrypts one layer from stdin to stdout.
 *
 * Where the layer's encryption annotations come from, first match wins:
 *  1. the payload containerd passes on fd 3 (only to the ids io.containerd.ocicrypt.decoder.v1.tar
 *     and …tar.gzip, and only when the unpack went through imgcrypt's helpers: CRI, ctr-enc);
 *  2. `--payload FILE` (the same bytes, for running the processor by hand);
 *  3. `--annotations FILE` (a JSON object of annotations, or a descriptor holding them, as
 *     `imgcrypt encrypt` writes).
 * Keys: `--decryption-keys-path DIR`, `--key SPEC` (repeatable) and the payload's own keys.
 *
 * With `--decompress` (fused mode, for an entry that accepts …+gzip+encrypted/…+zstd+encrypted and
 * returns plain tar) the plaintext is decompressed in the same process by processors/zstd's decoder.
 * Either way nothing past the hold-back is released before the HMAC matched.
 */
import fs from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { decodeStream } from '../zstd/decode.ts';
import { finished, openInput, openStdout } from '../zstd/io.ts';
import { DEFAULT_WINDOW_LOG_MAX, GC_EVERY } from '../zstd/options.ts';
import type { Annotations } from './annotations.ts';
import { DecryptConfigBuilder } from './decrypt-config.ts';
import { addKeySpecs } from './key-spec.ts';
import { decryptLayerChunks } from './layer-cipher.ts';
import { openLayer } from './layer-crypto.ts';
import { compressionOfEncrypted, ENCRYPTED_LAYER_MEDIA_TYPES } from './media-types.ts';
import { parsePayload, readPayloadFd, type ProcessorPayload } from './payload.ts';
import { exitSoonAfterFailure, lingerStdout } from './stdout-linger.ts';

export interface RawDecryptOptions {
  readonly decryptionKeysPath?: string;
  readonly key?: readonly string[];
  readonly decompress?: boolean;
  readonly payload?: string;
  readonly annotations?: string;
  readonly buffer?: string;
  /** No payload: buffer the layer and find its descriptor in this containerd (containerd-lookup.ts). */
  readonly containerdAddress?: string;
  readonly containerdNamespace?: string;
}

const CHUNK_BYTES = 1024 * 1024;
/** In fused mode the tar is cut at an entry boundary on failure (processors/zstd output-queue). */
const TAR_HOLD_BYTES = 4 * 1024 * 1024;
const PAYLOAD_IDS = 'io.containerd.ocicrypt.decoder.v1.tar and io.containerd.ocicrypt.decoder.v1.tar.gzip';

function warn(message: string): void {
  process.stderr.write(`outrigger imgcrypt: warning: ${message}\n`);
}

function readAnnotationsFile(file: string): Annotations {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CliError(`--annotations ${file}: ${(err as Error).message}`, ExitCode.usage);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CliError(`--annotations ${file}: not a JSON object`, ExitCode.usage);
  const obj = json as Record<string, unknown>;
  const inner = typeof obj.annotations === 'object' && obj.annotations !== null ? (obj.annotations as Record<string, unknown>) : obj;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(inner)) if (typeof v === 'string') out[k] = v;
  return out;
}

async function loadPayload(raw: RawDecryptOptions): Promise<ProcessorPayload | undefined> {
  let bytes: Buffer | undefined;
  let where: string;
  if (raw.payload !== undefined) {
    where = `--payload ${raw.payload}`;
    try {
      bytes = fs.readFileSync(raw.payload);
    } catch (err) {
      throw new CliError(`${where}: ${(err as Error).message}`, ExitCode.usage);
    }
  } else {
    where = 'fd 3';
    try {
      bytes = await readPayloadFd();
    } catch (err) {
      throw new CliError(`read payload from fd 3: ${(err as Error).message}`);
    }
  }
  if (bytes === undefined) return undefined;
  try {
    return parsePayload(bytes);
  } catch (err) {
    throw new CliError(`payload on ${where}: ${(err as Error).message}`);
  }
}

function noPayloadError(mediaType: string | undefined): CliError {
  return new CliError(
    `no payload on fd 3${mediaType ? ` for this ${mediaType} layer` : ''}: the layer's encryption annotations reach a stream processor only in ` +
      `containerd's payload, which containerd sends to the ids ${PAYLOAD_IDS} and only when the unpack goes through imgcrypt ` +
      `(CRI image_decryption, ctr-enc); plain 'ctr images import/pull' sends none. A keys directory alone cannot decrypt without ` +
      `them. Outside containerd, give --annotations FILE or --payload FILE.`,
  );
}

async function writeAll(chunks: AsyncIterable<Buffer>, output: Writable): Promise<number> {
  let failure: Error | undefined;
  const onError = (err: Error): void => {
    failure = err;
  };
  output.on('error', onError);
  let bytes = 0;
  try {
    for await (const chunk of chunks) {
      if (failure) throw failure;
      bytes += chunk.length;
      if (!output.write(chunk)) await Promise.race([once(output, 'drain'), once(output, 'error')]);
    }
    if (failure) throw failure;
    output.end();
    await finished(output);
    return bytes;
  } finally {
    output.off('error', onError);
  }
}

export async function runDecrypt(raw: RawDecryptOptions): Promise<void> {
  try {
    await decrypt(raw);
  } catch (err) {
    exitSoonAfterFailure();
    throw err;
  }
}

async function decrypt(raw: RawDecryptOptions): Promise<void> {
  const envMediaType = process.env.STREAM_PROCESSOR_MEDIATYPE;
  if (envMediaType !== undefined && compressionOfEncrypted(envMediaType) === undefined) {
    throw new CliError(
      `unsupported media type '${envMediaType}' in STREAM_PROCESSOR_MEDIATYPE; outrigger imgcrypt decrypts ${Object.keys(ENCRYPTED_LAYER_MEDIA_TYPES).join(', ')}`,
      ExitCode.usage,
    );
  }
  const payload = await loadPayload(raw);
  const mediaType = envMediaType ?? payload?.descriptor.mediaType;
  let layer = payload !== undefined ? `layer ${payload.descriptor.digest} (${payload.descriptor.mediaType})` : `layer${mediaType ? ` (${mediaType})` : ''}`;

  let annotations: Annotations;
  let buffered: import('./containerd-lookup.ts').BufferedLayer | undefined;
  if (payload !== undefined) annotations = payload.descriptor.annotations;
  else if (raw.annotations !== undefined) annotations = readAnnotationsFile(raw.annotations);
  else if (raw.containerdAddress !== undefined) {
    const { resolveFromContainerd } = await import('./containerd-lookup.ts');
    const lookup = { address: raw.containerdAddress, ...(raw.containerdNamespace ? { namespace: raw.containerdNamespace } : {}), ...(mediaType ? { mediaType } : {}) };
    let resolved;
    try {
      resolved = await resolveFromContainerd(process.stdin, lookup);
    } catch (err) {
      throw new CliError(`${layer}: ${(err as Error).message}`, ExitCode.failure, { cause: err });
    }
    buffered = resolved.buffered;
    annotations = resolved.found.descriptor.annotations;
    layer = `layer ${resolved.found.descriptor.digest} (${resolved.found.descriptor.mediaType}, from manifest ${resolved.found.manifest} in namespace ${resolved.found.namespace})`;
  } else throw noPayloadError(mediaType);

  const builder = new DecryptConfigBuilder();
  if (raw.decryptionKeysPath !== undefined) for (const w of builder.addKeysDirectory(raw.decryptionKeysPath)) warn(w);
  try {
    addKeySpecs(builder, raw.key ?? []);
    if (payload !== undefined) builder.addPayloadParameters(payload.parameters);
  } catch (err) {
    throw new CliError(`${layer}: ${(err as Error).message}`, ExitCode.failure, { cause: err });
  }
  let keys;
  try {
    keys = await openLayer(annotations, builder.build());
  } catch (err) {
    buffered?.close();
    throw new CliError(`call to DecryptLayer failed for ${layer}: ${(err as Error).message}`, ExitCode.failure, { cause: err });
  }

  const input = openInput(buffered?.path ?? '-', CHUNK_BYTES);
  const output = openStdout(CHUNK_BYTES);
  const plaintext = decryptLayerChunks(input.chunks, keys);
  try {
    if (raw.decompress) {
      // Compressed per the media type: must decode. Plain tar, or no media type known (a manual
      // run): decode what has gzip/zstd magic and pass anything else through, as containerd does.
      const compression = mediaType === undefined ? undefined : compressionOfEncrypted(mediaType);
      await decodeStream(plaintext, output, {
        maxWindowSize: 2 ** DEFAULT_WINDOW_LOG_MAX,
        chunkSize: CHUNK_BYTES,
        formats: ['zstd', 'gzip'],
        gcEvery: GC_EVERY,
        tarHoldBytes: TAR_HOLD_BYTES,
        passThrough: compression !== 'gzip' && compression !== 'zstd',
        end: true,
      });
      await finished(output);
    } else {
      await writeAll(plaintext, output);
    }
  } catch (err) {
    lingerStdout();
    output.destroy();
    throw new CliError(`could not copy data for ${layer}: ${(err as Error).message}`, ExitCode.failure, { cause: err });
  } finally {
    await input.close();
    buffered?.close();
  }
}
