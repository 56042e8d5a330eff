/**
 * The two JSON documents of an ocicrypt layer (blockcipher/blockcipher.go, imgcrypt.md §3):
 *  - public options, stored base64'd in `org.opencontainers.image.enc.pubopts`:
 *    `{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"<b64>","cipheroptions":{}}`
 *  - private options, the plaintext every key-wrapping scheme wraps:
 *    `{"symkey":"<b64>","digest":"sha256:…","cipheroptions":{"nonce":"<b64>"}}`
 * Written with the keys in that order (what skopeo writes byte for byte); read strictly, since a
 * missing nonce makes Go's decoder invent a random one and return garbage with a valid HMAC.
 */
import { decodeStdBase64, encodeStdBase64 } from './base64-std.ts';

export const CIPHER_AES_256_CTR_HMAC_SHA256 = 'AES_256_CTR_HMAC_SHA256';
export const SYMMETRIC_KEY_BYTES = 32;
export const NONCE_BYTES = 16;
export const HMAC_BYTES = 32;

export interface PublicLayerOptions {
  readonly cipher: string;
  readonly hmac: Buffer;
  /** Cipher options published in the clear; ocicrypt looks for the nonce here first. */
  readonly cipherOptions: Readonly<Record<string, Buffer>>;
}

export interface PrivateLayerOptions {
  readonly symKey: Buffer;
  /** Digest of the plaintext blob as the encrypting tool saw it; informational only (never checked by ocicrypt). */
  readonly digest: string;
  readonly cipherOptions: Readonly<Record<string, Buffer>>;
}

/** What the layer cipher needs, after both documents were checked. */
export interface LayerKeyMaterial {
  readonly symKey: Buffer;
  readonly nonce: Buffer;
  readonly hmac: Buffer;
}

function encodeOptions(options: Readonly<Record<string, Buffer>>): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(options)) out[k] = encodeStdBase64(v);
  return out;
}

export function serializePublicOptions(opts: PublicLayerOptions): Buffer {
  return Buffer.from(JSON.stringify({ cipher: opts.cipher, hmac: encodeStdBase64(opts.hmac), cipheroptions: encodeOptions(opts.cipherOptions) }));
}

export function serializePrivateOptions(opts: PrivateLayerOptions): Buffer {
  return Buffer.from(JSON.stringify({ symkey: encodeStdBase64(opts.symKey), digest: opts.digest, cipheroptions: encodeOptions(opts.cipherOptions) }));
}

function parseObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new Error(`${what}: not JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what}: not a JSON object`);
  return value as Record<string, unknown>;
}

function bytesField(obj: Record<string, unknown>, key: string, what: string): Buffer | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new Error(`${what}: "${key}" is not a base64 string`);
  return decodeStdBase64(v, `${what} "${key}"`);
}

function parseCipherOptions(obj: Record<string, unknown>, what: string): Record<string, Buffer> {
  const raw = obj.cipheroptions;
  if (raw === undefined || raw === null) return Object.create(null) as Record<string, Buffer>;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${what}: "cipheroptions" is not an object`);
  // No prototype: a "__proto__" key from the layer must stay an ordinary entry.
  const out: Record<string, Buffer> = Object.create(null) as Record<string, Buffer>;
  for (const key of Object.keys(raw)) {
    const v = bytesField(raw as Record<string, unknown>, key, `${what} cipheroptions`);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

export function parsePublicOptions(bytes: Uint8Array): PublicLayerOptions {
  const what = 'public layer options (pubopts)';
  const obj = parseObject(bytes, what);
  if (typeof obj.cipher !== 'string' || obj.cipher === '') throw new Error(`${what}: no cipher type provided`);
  const hmac = bytesField(obj, 'hmac', what);
  if (hmac === undefined || hmac.length === 0) throw new Error(`${what}: HMAC is not provided for decryption process`);
  return { cipher: obj.cipher, hmac, cipherOptions: parseCipherOptions(obj, what) };
}

export function parsePrivateOptions(bytes: Uint8Array): PrivateLayerOptions {
  const what = 'private layer options (unwrapped key)';
  const obj = parseObject(bytes, what);
  const symKey = bytesField(obj, 'symkey', what);
  if (symKey === undefined) throw new Error(`${what}: no "symkey"`);
  const digest = typeof obj.digest === 'string' ? obj.digest : '';
  return { symKey, digest, cipherOptions: parseCipherOptions(obj, what) };
}

/** Checks the pair as ocicrypt's AES-CTR cipher would, refusing what Go would accept wrongly (a missing nonce) or panic on. */
export function layerKeyMaterial(pub: PublicLayerOptions, priv: PrivateLayerOptions): LayerKeyMaterial {
  if (pub.cipher !== CIPHER_AES_256_CTR_HMAC_SHA256) throw new Error(`unsupported cipher type "${pub.cipher}" (only ${CIPHER_AES_256_CTR_HMAC_SHA256} exists)`);
  if (priv.symKey.length !== SYMMETRIC_KEY_BYTES) throw new Error(`invalid key length of ${priv.symKey.length} bytes; need ${SYMMETRIC_KEY_BYTES} bytes`);
  const nonce = pub.cipherOptions.nonce ?? priv.cipherOptions.nonce;
  if (nonce === undefined) throw new Error('no nonce in the layer options: refusing to decrypt (ocicrypt would use a random one and produce garbage)');
  if (nonce.length !== NONCE_BYTES) throw new Error(`nonce is ${nonce.length} bytes; AES-CTR needs ${NONCE_BYTES}`);
  if (pub.hmac.length !== HMAC_BYTES) throw new Error(`HMAC in pubopts is ${pub.hmac.length} bytes; HMAC-SHA256 has ${HMAC_BYTES}`);
  return { symKey: priv.symKey, nonce, hmac: pub.hmac };
}
