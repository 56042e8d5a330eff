/**
 * Loads, for a decryption, only the key-wrapping schemes whose annotations the layer carries.
 * ./schemes/index.ts imports all of them (jose, openpgp, the PKCS7 ASN.1 classes, grpc-js for key
 * providers), and evaluating those modules was ~80 ms of the decoder's start-up CPU per layer,
 * before the first byte could be decrypted; a JWE layer needs only jose.
 *
 * The order is schemes/index.ts's KEY_WRAPPER_SOURCES order, so the wrappers returned are that
 * list filtered to the annotations present, and unwrapPrivateOptions() behaves exactly as with
 * the full list (a test compares the two).
 */
import { KEYS_ANNOTATION_PREFIX, type Annotations } from './annotations.ts';
import type { KeyWrapper } from './key-wrapper.ts';

interface LazyScheme {
  /** True for an annotation id (`jwe`, `provider.<name>`, …) this scheme may unwrap. */
  matches(annotationId: string): boolean;
  load(): Promise<readonly KeyWrapper[]>;
}

const LAZY_SCHEMES: readonly LazyScheme[] = [
  { matches: (id) => id === 'jwe', load: async () => [(await import('./schemes/jwe.ts')).jweKeyWrapper] },
  { matches: (id) => id === 'pkcs7', load: async () => [(await import('./schemes/pkcs7.ts')).pkcs7KeyWrapper] },
  { matches: (id) => id === 'pgp', load: async () => [(await import('./schemes/pgp.ts')).pgpKeyWrapper] },
  // One wrapper per configured provider: the config is read only when a layer names a provider.
  { matches: (id) => id.startsWith('provider.'), load: async () => (await import('./schemes/keyprovider.ts')).keyProviderWrappers() },
];

/** The wrappers that could unwrap one of `annotations`' keys.* entries, in registry order. */
export async function wrappersForAnnotations(annotations: Annotations): Promise<readonly KeyWrapper[]> {
  const present = Object.keys(annotations)
    .filter((k) => k.startsWith(KEYS_ANNOTATION_PREFIX))
    .map((k) => k.slice(KEYS_ANNOTATION_PREFIX.length));
  const wanted = LAZY_SCHEMES.filter((s) => present.some((id) => s.matches(id)));
  const loaded = await Promise.all(wanted.map((s) => s.load()));
  return loaded.flat().filter((w) => present.includes(w.annotationId));
}
