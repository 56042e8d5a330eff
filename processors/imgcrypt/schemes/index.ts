/**
 * The key-wrapping schemes, in the order encryption writes their annotations and decryption
 * tries them (ocicrypt uses random map order; a fixed order makes our errors reproducible).
 *
 * Each scheme's module loads on use: together they pull in jose, openpgp, the PKCS7 ASN.1
 * classes and grpc-js (key providers), ~80 ms of start-up CPU, and a decryption needs only the
 * schemes its layer names (a JWE layer: jose).
 *
 * Adding a scheme: add one entry to KEY_WRAPPER_SCHEMES. Key providers give one wrapper per
 * configured provider, whose annotation id is `provider.<name>`; their config is read on load.
 */
import { KEYS_ANNOTATION_PREFIX, type Annotations } from '../annotations.ts';
import type { KeyWrapper } from '../key-wrapper.ts';

interface KeyWrapperScheme {
  /** True for an annotation id (`jwe`, `provider.<name>`, …) this scheme may unwrap. */
  matches(annotationId: string): boolean;
  load(): Promise<readonly KeyWrapper[]>;
}

const KEY_WRAPPER_SCHEMES: readonly KeyWrapperScheme[] = [
  { matches: (id) => id === 'jwe', load: async () => [(await import('./jwe.ts')).jweKeyWrapper] },
  { matches: (id) => id === 'pkcs7', load: async () => [(await import('./pkcs7.ts')).pkcs7KeyWrapper] },
  { matches: (id) => id === 'pgp', load: async () => [(await import('./pgp.ts')).pgpKeyWrapper] },
  { matches: (id) => id.startsWith('provider.'), load: async () => (await import('./keyprovider.ts')).keyProviderWrappers() },
];

async function load(schemes: readonly KeyWrapperScheme[]): Promise<readonly KeyWrapper[]> {
  return (await Promise.all(schemes.map((s) => s.load()))).flat();
}

/** Every wrapper, providers expanded; call once per run (provider config is read when called). */
export function keyWrappers(): Promise<readonly KeyWrapper[]> {
  return load(KEY_WRAPPER_SCHEMES);
}

/** The wrappers that could unwrap one of `annotations`' keys.* entries, in registry order. */
export async function wrappersForAnnotations(annotations: Annotations): Promise<readonly KeyWrapper[]> {
  const present = Object.keys(annotations)
    .filter((k) => k.startsWith(KEYS_ANNOTATION_PREFIX))
    .map((k) => k.slice(KEYS_ANNOTATION_PREFIX.length));
  const wanted = KEY_WRAPPER_SCHEMES.filter((s) => present.some((id) => s.matches(id)));
  return (await load(wanted)).filter((w) => present.includes(w.annotationId));
}
