/**
 * Recognises what a key file holds (imgcrypt.md §5): private keys in PEM (PKCS#8, PKCS#1, SEC1,
 * legacy `Proc-Type: 4,ENCRYPTED` with a password, PKCS#8 encrypted with a password), DER
 * (PKCS#8, PKCS#1, SEC1) or JWK; public keys (SPKI PEM/DER, public JWK); x509 certificates (PEM or
 * DER); binary OpenPGP keyrings (told apart by the first packet's tag). Anything else throws an
 * Error whose message says why, for the caller to report or skip.
 */
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';

export type KeyFileContent =
  | { readonly kind: 'private-key'; readonly key: KeyObject }
  | { readonly kind: 'public-key'; readonly key: KeyObject; readonly alg?: string }
  | { readonly kind: 'certificate'; readonly cert: X509Certificate }
  | { readonly kind: 'gpg-secret-keyring' }
  | { readonly kind: 'gpg-public-keyring' };

/** JWK `alg` values ocicrypt's JWE wrapper accepts on a public key. */
export const JWE_KEY_ALGORITHMS = ['RSA-OAEP', 'RSA-OAEP-256', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW'] as const;

export class KeyPasswordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyPasswordError';
  }
}

function pemLabels(text: string): string[] {
  return [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]!);
}

/** OpenPGP packet tag of the first byte, old or new header format (RFC 4880 §4.2). */
function openPgpTag(first: number): number | undefined {
  if ((first & 0x80) === 0) return undefined;
  return (first & 0x40) !== 0 ? first & 0x3f : (first >> 2) & 0x0f;
}

function privateFromPem(text: string, password: string | undefined, encrypted: boolean): KeyObject {
  if (encrypted && password === undefined) throw new KeyPasswordError('Missing password for encrypted private key');
  try {
    return createPrivateKey(password === undefined ? { key: text, format: 'pem' } : { key: text, format: 'pem', passphrase: password });
  } catch (err) {
    if (encrypted) throw new KeyPasswordError('Wrong password: could not decrypt private key');
    throw new Error(`PEM private key does not parse: ${(err as Error).message}`);
  }
}

function fromJwk(text: string): KeyFileContent {
  let jwk: Record<string, unknown>;
  try {
    jwk = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`looks like JSON but does not parse (${(err as Error).message})`);
  }
  if (typeof jwk !== 'object' || jwk === null || typeof jwk.kty !== 'string') throw new Error('JSON without "kty": not a JWK');
  const alg = typeof jwk.alg === 'string' ? jwk.alg : undefined;
  try {
    if (jwk.d !== undefined) return { kind: 'private-key', key: createPrivateKey({ key: jwk as never, format: 'jwk' }) };
    return { kind: 'public-key', key: createPublicKey({ key: jwk as never, format: 'jwk' }), ...(alg !== undefined ? { alg } : {}) };
  } catch (err) {
    throw new Error(`JWK does not parse: ${(err as Error).message}`);
  }
}

function fromPem(text: string, password: string | undefined): KeyFileContent {
  const labels = pemLabels(text);
  const first = labels.find((l) => l !== 'EC PARAMETERS');
  switch (first) {
    case 'CERTIFICATE':
      return { kind: 'certificate', cert: new X509Certificate(text) };
    case 'PRIVATE KEY':
    case 'RSA PRIVATE KEY':
    case 'EC PRIVATE KEY':
      return { kind: 'private-key', key: privateFromPem(text, password, /Proc-Type:\s*4,ENCRYPTED/.test(text)) };
    case 'ENCRYPTED PRIVATE KEY':
      return { kind: 'private-key', key: privateFromPem(text, password, true) };
    case 'PUBLIC KEY':
      return { kind: 'public-key', key: createPublicKey({ key: text, format: 'pem' }) };
    case 'RSA PUBLIC KEY':
      throw new Error('PKCS#1 "RSA PUBLIC KEY" PEM is not accepted (ocicrypt reads SPKI "PUBLIC KEY" only); convert with openssl rsa -RSAPublicKey_in -pubout');
    case 'PGP PRIVATE KEY BLOCK':
    case 'PGP PUBLIC KEY BLOCK':
      throw new Error('armored OpenPGP key: ocicrypt needs a binary keyring (gpg --export-secret-keys without --armor)');
    case undefined:
      throw new Error('PEM text without a BEGIN line');
    default:
      throw new Error(`PEM block "${first}" is not a key or certificate`);
  }
}

function fromDer(bytes: Buffer): KeyFileContent {
  for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
    try {
      return { kind: 'private-key', key: createPrivateKey({ key: bytes, format: 'der', type }) };
    } catch {
      // next encoding
    }
  }
  try {
    return { kind: 'certificate', cert: new X509Certificate(bytes) };
  } catch {
    // not a certificate
  }
  try {
    return { kind: 'public-key', key: createPublicKey({ key: bytes, format: 'der', type: 'spki' }) };
  } catch {
    // not a public key
  }
  throw new Error('DER data that is not a PKCS#8/PKCS#1/SEC1 private key, an x509 certificate or an SPKI public key');
}

/** Classifies one key file; `password` applies to encrypted private keys. */
export function readKeyFile(bytes: Uint8Array, password?: string): KeyFileContent {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length === 0) throw new Error('empty file');
  const tag = openPgpTag(buf[0]!);
  if (tag === 5) return { kind: 'gpg-secret-keyring' };
  if (tag === 6) return { kind: 'gpg-public-keyring' };
  const text = buf.toString('latin1');
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) return fromJwk(trimmed);
  if (text.includes('-----BEGIN ')) return fromPem(text, password);
  if (buf[0] === 0x30) return fromDer(buf);
  throw new Error('not a key: neither PEM, DER, JWK nor a binary OpenPGP keyring');
}

/** Short description for messages: `RSA 2048-bit private key`. */
export function describeKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  const size = d?.modulusLength !== undefined ? ` ${d.modulusLength}-bit` : d?.namedCurve !== undefined ? ` ${d.namedCurve}` : '';
  return `${(key.asymmetricKeyType ?? 'unknown').toUpperCase()}${size} ${key.type} key`;
}
