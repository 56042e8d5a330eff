/**
 * `--recipient <scheme>:<value>` as ctr-enc and skopeo's `--encryption-key` take them:
 * `jwe:<public key file>`, `pkcs7:<x509 certificate file>`, `pgp:<name or e-mail>`,
 * `provider:<name>[:<params>]`. Builds the EncryptConfig (key-wrapper.ts) every scheme reads.
 */
import fs from 'node:fs';
import type { EncryptConfig } from './key-wrapper.ts';
import { JWE_KEY_ALGORITHMS, readKeyFile } from './key-material.ts';

export interface RecipientOptions {
  /** Binary OpenPGP public keyrings to look `pgp:` names up in. */
  readonly gpgPublicKeyrings?: readonly { readonly source: string; readonly bytes: Uint8Array }[];
}

function readFile(spec: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`--recipient ${spec}: cannot read ${file}: ${(err as Error).message}`);
  }
}

export function parseRecipients(specs: readonly string[], options: RecipientOptions = {}): EncryptConfig {
  const jwe: { source: string; key: import('node:crypto').KeyObject; alg?: string }[] = [];
  const pkcs7: EncryptConfig['pkcs7'][number][] = [];
  const pgpRecipients: string[] = [];
  const providers: Record<string, string> = {};
  for (const spec of specs) {
    const colon = spec.indexOf(':');
    const scheme = colon < 0 ? '' : spec.slice(0, colon);
    const value = colon < 0 ? '' : spec.slice(colon + 1);
    if (value === '') throw new Error(`--recipient ${spec}: expected <scheme>:<value> with scheme jwe, pkcs7, pgp or provider`);
    switch (scheme) {
      case 'jwe': {
        let content;
        try {
          content = readKeyFile(readFile(spec, value));
        } catch (err) {
          throw new Error(`--recipient ${spec}: ${(err as Error).message}`);
        }
        if (content.kind !== 'public-key') throw new Error(`--recipient ${spec}: ${value} is not a public key (SPKI PEM/DER or public JWK); it is a ${content.kind}`);
        if (content.alg !== undefined && !(JWE_KEY_ALGORITHMS as readonly string[]).includes(content.alg)) {
          throw new Error(`--recipient ${spec}: JWK alg ${content.alg} is not one of ${JWE_KEY_ALGORITHMS.join(', ')}`);
        }
        jwe.push({ source: value, key: content.key, ...(content.alg !== undefined ? { alg: content.alg } : {}) });
        break;
      }
      case 'pkcs7': {
        let content;
        try {
          content = readKeyFile(readFile(spec, value));
        } catch (err) {
          throw new Error(`--recipient ${spec}: ${(err as Error).message}`);
        }
        if (content.kind !== 'certificate') throw new Error(`--recipient ${spec}: ${value} is not an x509 certificate`);
        pkcs7.push({ source: value, cert: content.cert });
        break;
      }
      case 'pgp':
        pgpRecipients.push(value);
        break;
      case 'provider': {
        const at = value.indexOf(':');
        providers[at < 0 ? value : value.slice(0, at)] = at < 0 ? 'Enabled' : value.slice(at + 1);
        break;
      }
      default:
        throw new Error(`--recipient ${spec}: unknown scheme "${scheme}" (jwe, pkcs7, pgp, provider)`);
    }
  }
  return { jwe, pkcs7, pgpRecipients, gpgPublicKeyrings: [...(options.gpgPublicKeyrings ?? [])], providers };
}
