/**
 * The key-wrapping schemes, in the order encryption writes their annotations and decryption
 * tries them (ocicrypt uses random map order; a fixed order makes our errors reproducible).
 *
 * Adding a scheme: import it and add one line to KEY_WRAPPER_SOURCES. An entry is a KeyWrapper,
 * or a function returning several (key providers: one wrapper per configured provider, whose
 * annotation id is `provider.<name>`).
 */
import type { KeyWrapper } from '../key-wrapper.ts';
import { jweKeyWrapper } from './jwe.ts';
import { keyProviderWrappers } from './keyprovider.ts';
import { pgpKeyWrapper } from './pgp.ts';
import { pkcs7KeyWrapper } from './pkcs7.ts';

export type KeyWrapperSource = KeyWrapper | (() => readonly KeyWrapper[]);

export const KEY_WRAPPER_SOURCES: readonly KeyWrapperSource[] = [
  jweKeyWrapper,
  pkcs7KeyWrapper,
  pgpKeyWrapper,
  keyProviderWrappers,
];

/** Every wrapper, providers expanded; call once per run (provider config is read when called). */
export function keyWrappers(sources: readonly KeyWrapperSource[] = KEY_WRAPPER_SOURCES): readonly KeyWrapper[] {
  return sources.flatMap((s) => (typeof s === 'function' ? s() : [s]));
}
