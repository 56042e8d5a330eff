/**
 * JWE key wrapping (ocicrypt keywrap/jwe, imgcrypt.md §4) with npm `jose`.
 * - Wrap: A256GCM content encryption; per recipient `RSA-OAEP` (SHA-1) for RSA keys,
 *   `ECDH-ES+A256KW` for EC keys, or the public JWK's own `alg`. One recipient gives the flattened
 *   JSON form with `alg` in the protected header, several the general form with `{"enc"}`
 *   protected and `alg` per recipient: what go-jose's FullSerialize writes (minus its
 *   non-RFC top-level `encrypted_key` copy, which go-jose itself ignores when `recipients` exists).
 * - Unwrap: compact, flattened or general serialization; every private key against every
 *   recipient; RSA-OAEP, RSA-OAEP-256, ECDH-ES+A128/192/256KW; any AES-GCM or AES-CBC-HMAC content.
 */
import type { KeyObject } from 'node:crypto';
import { compactDecrypt, flattenedDecrypt, FlattenedEncrypt, generalDecrypt, GeneralEncrypt, type FlattenedJWE, type GeneralJWE } from 'jose';
import type { DecryptConfig, EncryptConfig, KeyWrapper } from '../key-wrapper.ts';
import { JWE_KEY_ALGORITHMS } from '../key-material.ts';

const CONTENT_ENCRYPTION = 'A256GCM';
const ACCEPTED_CONTENT = ['A128GCM', 'A192GCM', 'A256GCM', 'A128CBC-HS256', 'A192CBC-HS384', 'A256CBC-HS512'];
const DECRYPT_OPTIONS = { keyManagementAlgorithms: [...JWE_KEY_ALGORITHMS], contentEncryptionAlgorithms: ACCEPTED_CONTENT };

/** The key-management algorithm ocicrypt picks for a recipient key. */
export function jweAlgorithmFor(key: KeyObject, alg?: string): string {
  if (alg !== undefined) return alg;
  if (key.asymmetricKeyType === 'rsa') return 'RSA-OAEP';
  if (key.asymmetricKeyType === 'ec') return 'ECDH-ES+A256KW';
  throw new Error(`JWE: ${key.asymmetricKeyType ?? 'unknown'} keys cannot be JWE recipients (RSA or EC P-256/384/521 only)`);
}

/** go-jose's member order, so our output reads like skopeo's. */
function orderedFlattened(jwe: FlattenedJWE): Record<string, unknown> {
  return { protected: jwe.protected, encrypted_key: jwe.encrypted_key, iv: jwe.iv, ciphertext: jwe.ciphertext, tag: jwe.tag };
}

function orderedGeneral(jwe: GeneralJWE): Record<string, unknown> {
  return { protected: jwe.protected, recipients: jwe.recipients, iv: jwe.iv, ciphertext: jwe.ciphertext, tag: jwe.tag };
}

export async function jweWrap(recipients: EncryptConfig['jwe'], plaintext: Uint8Array): Promise<Uint8Array> {
  if (recipients.length === 1) {
    const r = recipients[0]!;
    const jwe = await new FlattenedEncrypt(plaintext)
      .setProtectedHeader({ alg: jweAlgorithmFor(r.key, r.alg), enc: CONTENT_ENCRYPTION })
      .encrypt(r.key);
    return Buffer.from(JSON.stringify(orderedFlattened(jwe)));
  }
  const enc = new GeneralEncrypt(plaintext).setProtectedHeader({ enc: CONTENT_ENCRYPTION });
  for (const r of recipients) enc.addRecipient(r.key).setUnprotectedHeader({ alg: jweAlgorithmFor(r.key, r.alg) });
  return Buffer.from(JSON.stringify(orderedGeneral(await enc.encrypt())));
}

type Parsed = { readonly form: 'compact'; readonly text: string } | { readonly form: 'flattened' | 'general'; readonly json: Record<string, unknown> };

function parseJwe(blob: Uint8Array): Parsed {
  const text = Buffer.from(blob).toString('utf8').trim();
  if (!text.startsWith('{')) {
    if (text.split('.').length !== 5) throw new Error('JWE: not a compact serialization (5 dot-separated parts) nor JSON');
    return { form: 'compact', text };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`JWE: JSON serialization does not parse: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('JWE: JSON serialization is not an object');
  const obj = json as Record<string, unknown>;
  return { form: Array.isArray(obj.recipients) ? 'general' : 'flattened', json: obj };
}

async function decryptWith(parsed: Parsed, key: KeyObject): Promise<Uint8Array> {
  switch (parsed.form) {
    case 'compact':
      return (await compactDecrypt(parsed.text, key, DECRYPT_OPTIONS)).plaintext;
    case 'flattened':
      return (await flattenedDecrypt(parsed.json as unknown as FlattenedJWE, key, DECRYPT_OPTIONS)).plaintext;
    case 'general': {
      // go-jose adds a top-level encrypted_key beside `recipients`; it is not part of the general form.
      const { encrypted_key: _ignored, ...general } = parsed.json;
      return (await generalDecrypt(general as unknown as GeneralJWE, key, DECRYPT_OPTIONS)).plaintext;
    }
  }
}

export async function jweUnwrap(dc: DecryptConfig, blob: Uint8Array): Promise<Uint8Array> {
  const parsed = parseJwe(blob);
  const tried: string[] = [];
  for (const { source, key } of dc.privateKeys) {
    if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ec') {
      tried.push(`${source} (${key.asymmetricKeyType} key: not usable for JWE)`);
      continue;
    }
    try {
      return await decryptWith(parsed, key);
    } catch (err) {
      tried.push(`${source} (${(err as Error).message})`);
    }
  }
  throw new Error(`JWE: no suitable private key found for decryption (${parsed.form} form); tried ${tried.length === 0 ? 'no keys' : tried.join(', ')}`);
}

export const jweKeyWrapper: KeyWrapper = {
  annotationId: 'jwe',
  async wrap(ec, privateOptionsJson) {
    if (ec.jwe.length === 0) return undefined;
    return jweWrap(ec.jwe, privateOptionsJson);
  },
  noPossibleKeys(dc) {
    return dc.privateKeys.length === 0;
  },
  unwrap: jweUnwrap,
};
