/**
 * One layer in, one layer out: the functions `imgcrypt encrypt|decrypt`, the stream processor and
 * the image-level commands (encrypt-image, decrypt-image) share. The image commands only pick
 * blobs and rewrite descriptors; everything about the blob and its annotations happens here.
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DecryptConfig, EncryptConfig, KeyWrapper } from './key-wrapper.ts';
import { PUBOPTS_ANNOTATION, countRecipients, unwrapPrivateOptions, wrapPrivateOptions, type Annotations } from './annotations.ts';
import { decodeStdBase64, encodeStdBase64 } from './base64-std.ts';
import { generateLayerKeys, LayerDecryptTransform, LayerEncryptTransform, type DecryptOptions } from './layer-cipher.ts';
import {
  CIPHER_AES_256_CTR_HMAC_SHA256,
  layerKeyMaterial,
  parsePrivateOptions,
  parsePublicOptions,
  serializePrivateOptions,
  serializePublicOptions,
  type LayerKeyMaterial,
} from './options-json.ts';
import { keyWrappers, wrappersForAnnotations } from './schemes/index.ts';

export interface OpenedLayer extends LayerKeyMaterial {
  /** Scheme whose blob unwrapped (`jwe`, `pkcs7`, …). */
  readonly scheme: string;
}

/**
 * Unwraps the layer key from a descriptor's annotations. Without `wrappers`, only the schemes
 * the layer uses are loaded (schemes/index.ts: the decoder's start-up cost).
 */
export async function openLayer(annotations: Annotations, dc: DecryptConfig, wrappers?: readonly KeyWrapper[]): Promise<OpenedLayer> {
  const pubB64 = annotations[PUBOPTS_ANNOTATION];
  if (pubB64 === undefined) throw new Error(`the layer has no ${PUBOPTS_ANNOTATION} annotation (cipher, HMAC): it cannot be decrypted`);
  const pub = parsePublicOptions(decodeStdBase64(pubB64, PUBOPTS_ANNOTATION));
  const { privateOptionsJson, scheme } = await unwrapPrivateOptions(annotations, dc, wrappers ?? (await wrappersForAnnotations(annotations)));
  return { ...layerKeyMaterial(pub, parsePrivateOptions(privateOptionsJson)), scheme };
}

/** Counts bytes and hashes them on their way through. */
class Digester extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

export interface EncryptedLayer {
  /** Descriptor annotations to add: pubopts and one keys.<scheme> per scheme. */
  readonly annotations: Record<string, string>;
  readonly size: number;
  /** Digest of the ciphertext: the new descriptor's digest. */
  readonly digest: string;
  /** Digest of the plaintext as read (also what the private options record unless `sourceDigest` was given). */
  readonly plaintextDigest: string;
}

export interface EncryptLayerOptions {
  /** The source descriptor's digest, recorded in the private options as ocicrypt does; default: the digest of the bytes read. */
  readonly sourceDigest?: string;
  readonly wrappers?: readonly KeyWrapper[];
}

/** Throws before any byte is read when `ec` names no recipient. */
export function checkRecipients(ec: EncryptConfig): void {
  if (countRecipients(ec) === 0) throw new Error('no recipients: give at least one --recipient (jwe:, pkcs7:, pgp:, provider:)');
}

/** Encrypts `input` into `output` (ended afterwards) and returns the annotations for the new descriptor. */
export async function encryptLayerStream(input: Readable, output: Writable, ec: EncryptConfig, options: EncryptLayerOptions = {}): Promise<EncryptedLayer> {
  checkRecipients(ec);
  const keys = generateLayerKeys();
  const plain = new Digester();
  const encrypt = new LayerEncryptTransform(keys);
  const cipher = new Digester();
  await pipeline(input, plain, encrypt, cipher, output);
  const plaintextDigest = plain.digest();
  const privateOptions = serializePrivateOptions({ symKey: keys.symKey, digest: options.sourceDigest ?? plaintextDigest, cipherOptions: { nonce: keys.nonce } });
  // Encryption wants every scheme that has recipients: all of them, loaded here, not at start-up.
  const wrapped = await wrapPrivateOptions(ec, privateOptions, options.wrappers ?? (await keyWrappers()));
  const pubopts = serializePublicOptions({ cipher: CIPHER_AES_256_CTR_HMAC_SHA256, hmac: encrypt.hmac(), cipherOptions: {} });
  return {
    // Key annotations first, then pubopts: the order ocicrypt's encryptLayer fills the map in.
    annotations: { ...wrapped, [PUBOPTS_ANNOTATION]: encodeStdBase64(pubopts) },
    size: cipher.bytes,
    digest: cipher.digest(),
    plaintextDigest,
  };
}

export interface DecryptedLayer {
  readonly size: number;
  readonly digest: string;
  readonly scheme: string;
}

/** Decrypts `input` into `output`; rejects (with the tail withheld) on a wrong key or corrupt data. */
export async function decryptLayerStream(
  input: Readable,
  output: Writable,
  annotations: Annotations,
  dc: DecryptConfig,
  options: DecryptOptions & { readonly wrappers?: readonly KeyWrapper[] } = {},
): Promise<DecryptedLayer> {
  const opened = await openLayer(annotations, dc, options.wrappers);
  const plain = new Digester();
  await pipeline(input, new LayerDecryptTransform(opened, options), plain, output);
  return { size: plain.bytes, digest: plain.digest(), scheme: opened.scheme };
}
