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
import type { Writable } from 'node:stream';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { finished, openStdout } from '../zstd/io.ts';
import { DEFAULT_WINDOW_LOG_MAX, GC_EVERY } from '../zstd/options.ts';
import type { Annotations } from './annotations.ts';
import { DecryptConfigBuilder } from './decrypt-config.ts';
import { addKeySpecs } from './key-spec.ts';
import { HmacWorker } from './hmac-worker.ts';
import { openLayer } from './layer-crypto.ts';
import { compressionOfEncrypted, ENCRYPTED_LAYER_MEDIA_TYPES } from './media-types.ts';
import { decryptSharedChunks } from './parallel-decrypt.ts';
import { parsePayload, readPayloadFd, type ProcessorPayload } from './payload.ts';
import { SharedChunkReader } from './shared-chunk-reader.ts';
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
/**
 * Ciphertext chunks in flight between the reader, the decryption here and the HMAC worker: the
 * worker hashes slower than this thread decrypts, so this bounds how far ahead reading runs.
 */
const POOL_CHUNKS = 8;
/** In fused mode the tar is cut at an entry boundary on failure (processors/zstd output-queue). */
const TAR_HOLD_BYTES = 4 * 1024 * 1024;
const PAYLOAD_IDS = 'io.containerd.ocicrypt.decoder.v1.tar and io.containerd.ocicrypt.decoder.v1.tar.gzip';

function warn(message: string): void {
  process.stderr.write(`outrigger imgcrypt: warning: ${message}\n`);
}

/** The annotations in `file`, and the layer size when the file is a whole descriptor. */
function readAnnotationsFile(file: string): { annotations: Annotations; size?: number } {
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
  return typeof obj.size === 'number' ? { annotations: out, size: obj.size } : { annotations: out };
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

/**
 * Writes `chunks` with one write in flight while the next chunk is decrypted, and waits for a
 * write to finish before it asks for the chunk after next: decryptSharedChunks reuses a chunk's
 * buffer from then on (parallel-decrypt.ts).
 */
async function writeAll(chunks: AsyncIterable<Buffer>, output: Writable): Promise<number> {
  let failure: Error | undefined;
  const onError = (err: Error): void => {
    failure ??= err;
  };
  output.on('error', onError);
  let writing: Promise<void> | undefined;
  let bytes = 0;
  try {
    for await (const chunk of chunks) {
      await writing;
      if (failure) throw failure;
      bytes += chunk.length;
      writing = new Promise<void>((resolve, reject) => output.write(chunk, (err) => (err ? reject(err) : resolve())));
      // Awaited before the next write; until then a failure must not count as unhandled.
      writing.catch(() => {});
    }
    await writing;
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
    // Every failure, also those before any output (no key opens the layer): without the held EOF
    // containerd may report its own "wrong diff id" instead of our message (stdout-linger.ts).
    lingerStdout();
    exitSoonAfterFailure();
    throw err;
  }
}

async function decrypt(raw: RawDecryptOptions): Promise<void> {
  const hmac = new HmacWorker();
  try {
    await decryptWith(raw, hmac);
  } finally {
    await hmac.close();
  }
}

async function decryptWith(raw: RawDecryptOptions, hmac: HmacWorker): Promise<void> {
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
  let size: number | undefined;
  let buffered: import('./containerd-lookup.ts').BufferedLayer | undefined;
  if (payload !== undefined) ({ annotations, size } = payload.descriptor);
  else if (raw.annotations !== undefined) ({ annotations, size } = readAnnotationsFile(raw.annotations));
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
    ({ annotations, size } = resolved.found.descriptor);
    layer = `layer ${resolved.found.descriptor.digest} (${resolved.found.descriptor.mediaType}, from manifest ${resolved.found.manifest} in namespace ${resolved.found.namespace})`;
  } else throw noPayloadError(mediaType);
  // A layer of more than one chunk is hashed on the worker thread: start it now, so its start-up
  // (~25 ms of CPU on the other core) overlaps loading the keys and unwrapping the layer key. A
  // smaller layer (most of an image's) is hashed on this thread and never starts it.
  if (!(size !== undefined && size <= CHUNK_BYTES)) hmac.start();

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

  let input: SharedChunkReader;
  try {
    input = new SharedChunkReader(buffered?.path ?? '-', CHUNK_BYTES, POOL_CHUNKS);
  } catch (err) {
    buffered?.close();
    throw new CliError(`${layer}: open input: ${(err as Error).message}`, ExitCode.failure, { cause: err });
  }
  const output = openStdout(CHUNK_BYTES);
  // In fused mode the decoder paces collections by its input, which is this plaintext.
  const plaintext = decryptSharedChunks(input, keys, hmac, { gcEvery: raw.decompress ? 0 : GC_EVERY });
  try {
    if (raw.decompress) {
      // Compressed per the media type: must decode. Plain tar, or no media type known (a manual
      // run): decode what has gzip/zstd magic and pass anything else through, as containerd does.
      const compression = mediaType === undefined ? undefined : compressionOfEncrypted(mediaType);
      const { decodeStream } = await import('../zstd/decode.ts');
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
