/**
 * The layer descriptor's encryption annotations (ocicrypt encryption.go, imgcrypt.md §3):
 * `org.opencontainers.image.enc.pubopts` (base64 public options) and one
 * `org.opencontainers.image.enc.keys.<scheme>` per scheme, a comma-separated list of base64
 * blobs that each wrap the same private options. Decryption walks the schemes in registry order,
 * skips those with no annotation or no possible keys, and takes the first blob that unwraps.
 */
import type { DecryptConfig, EncryptConfig, KeyWrapper } from './key-wrapper.ts';
import { decodeStdBase64, encodeStdBase64 } from './base64-std.ts';

export const ENC_ANNOTATION_PREFIX = 'org.opencontainers.image.enc.';
export const PUBOPTS_ANNOTATION = `${ENC_ANNOTATION_PREFIX}pubopts`;
export const KEYS_ANNOTATION_PREFIX = `${ENC_ANNOTATION_PREFIX}keys.`;

export type Annotations = Readonly<Record<string, string>>;

export function keysAnnotation(annotationId: string): string {
  return `${KEYS_ANNOTATION_PREFIX}${annotationId}`;
}

export function countRecipients(ec: EncryptConfig): number {
  return ec.jwe.length + ec.pkcs7.length + ec.pgpRecipients.length + Object.keys(ec.providers).length;
}

/** Wraps the private options for every scheme that has recipients; throws when none has. */
export async function wrapPrivateOptions(ec: EncryptConfig, privateOptionsJson: Uint8Array, wrappers: readonly KeyWrapper[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const wrapper of wrappers) {
    let blob: Uint8Array | undefined;
    try {
      blob = await wrapper.wrap(ec, privateOptionsJson);
    } catch (err) {
      throw new Error(`${wrapper.annotationId}: ${(err as Error).message}`, { cause: err });
    }
    if (blob !== undefined) out[keysAnnotation(wrapper.annotationId)] = encodeStdBase64(blob);
  }
  if (Object.keys(out).length === 0) {
    const known = wrappers.map((w) => w.annotationId).join(', ');
    throw new Error(`no recipient could be used: none of the configured recipients belongs to a scheme this build wraps (${known})`);
  }
  return out;
}

export class KeyUnwrapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyUnwrapError';
  }
}

function describeKeysTried(dc: DecryptConfig): string {
  const lines: string[] = [];
  const names = [...dc.privateKeys.map((k) => k.source), ...dc.x509s.map((c) => `${c.source} (certificate)`), ...dc.gpgPrivateKeys.map((g) => `${g.source} (gpg keyring)`)];
  lines.push(names.length === 0 ? 'key files tried: none' : `key files tried: ${names.join(', ')}`);
  const providers = Object.keys(dc.providerParameters);
  if (providers.length > 0) lines.push(`key providers: ${providers.join(', ')}`);
  if (dc.skipped.length > 0) lines.push(`skipped as unusable: ${dc.skipped.map((s) => s.source).join(', ')} (reasons in the warnings above)`);
  return lines.join('\n');
}

export interface UnwrapResult {
  readonly privateOptionsJson: Uint8Array;
  readonly scheme: string;
}

/** Finds the private options in `annotations` with the keys of `dc`; errors name every scheme and key file tried. */
export async function unwrapPrivateOptions(annotations: Annotations, dc: DecryptConfig, wrappers: readonly KeyWrapper[]): Promise<UnwrapResult> {
  const present = Object.keys(annotations).filter((k) => k.startsWith(KEYS_ANNOTATION_PREFIX)).map((k) => k.slice(KEYS_ANNOTATION_PREFIX.length));
  if (present.length === 0) throw new KeyUnwrapError(`the layer has no ${KEYS_ANNOTATION_PREFIX}* annotation: nothing to unwrap the layer key from`);
  const errors: string[] = [];
  let attempted = 0;
  for (const wrapper of wrappers) {
    const value = annotations[keysAnnotation(wrapper.annotationId)];
    if (value === undefined) continue;
    if (wrapper.noPossibleKeys(dc)) {
      errors.push(`${wrapper.annotationId}: no keys of this scheme were given`);
      continue;
    }
    attempted++;
    const blobs = value.split(',');
    for (const [i, b64] of blobs.entries()) {
      let blob: Buffer;
      try {
        blob = decodeStdBase64(b64, `${keysAnnotation(wrapper.annotationId)} element ${i}`);
      } catch (err) {
        errors.push(`${wrapper.annotationId}: ${(err as Error).message}`);
        break;
      }
      try {
        return { privateOptionsJson: await wrapper.unwrap(dc, blob), scheme: wrapper.annotationId };
      } catch (err) {
        errors.push(`${wrapper.annotationId}${blobs.length > 1 ? ` blob ${i}` : ''}: ${(err as Error).message}`);
      }
    }
  }
  const known = new Set(wrappers.map((w) => w.annotationId));
  for (const id of present) if (!known.has(id)) errors.push(`${id}: this build has no unwrapper for this scheme`);
  const head =
    attempted === 0
      ? 'missing private key needed for decryption'
      : 'no suitable key unwrapper found or none of the private keys could be used for decryption';
  throw new KeyUnwrapError(`${head} (layer schemes: ${present.join(', ')}):\n${errors.join('\n')}\n${describeKeysTried(dc)}`);
}
