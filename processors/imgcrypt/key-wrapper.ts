/**
 * The seam between the layer cipher and the key-wrapping schemes (ocicrypt's keywrap
 * packages): every scheme wraps the same private-options JSON for its recipients and stores
 * the result in `org.opencontainers.image.enc.keys.<annotationId>` (imgcrypt.md §3, §4).
 * Each scheme lives in its own module under ./schemes/ and is listed in ./schemes/index.ts.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';

/** A private key loaded from a file, flag or keys directory; `source` names it in errors. */
export interface LoadedPrivateKey {
  readonly source: string;
  readonly key: KeyObject;
}

/** An OpenPGP secret keyring (binary, as ocicrypt requires) and its optional passphrase. */
export interface GpgPrivateKeyring {
  readonly source: string;
  readonly bytes: Uint8Array;
  readonly password?: string;
}

export interface LoadedCertificate {
  readonly source: string;
  readonly cert: X509Certificate;
}

/** Everything a decryption may use, gathered from --key flags, a keys directory and the environment. */
export interface DecryptConfig {
  readonly privateKeys: readonly LoadedPrivateKey[];
  /** Recipient certificates, which PKCS7 needs beside the private key. */
  readonly x509s: readonly LoadedCertificate[];
  readonly gpgPrivateKeys: readonly GpgPrivateKeyring[];
  /** Key-provider names given as `provider:<name>[:<params>]` → params (or "Enabled"), as ocicrypt's DecryptConfig.Parameters. */
  readonly providerParameters: Readonly<Record<string, string>>;
  /** Files that were skipped (unparseable) with the reason, for the final error message. */
  readonly skipped: readonly { readonly source: string; readonly reason: string }[];
}

/** Recipients of an encryption, by scheme (`--recipient jwe:pub.pem`, `pkcs7:cert.pem`, `pgp:name`, `provider:name[:params]`). */
export interface EncryptConfig {
  readonly jwe: readonly { readonly source: string; readonly key: KeyObject; readonly alg?: string }[];
  readonly pkcs7: readonly LoadedCertificate[];
  /** `pgp:` recipients are names or e-mails matched against the public keyring(s) below. */
  readonly pgpRecipients: readonly string[];
  readonly gpgPublicKeyrings: readonly { readonly source: string; readonly bytes: Uint8Array }[];
  readonly providers: Readonly<Record<string, string>>;
}

export interface KeyWrapper {
  /** Annotation suffix: `jwe`, `pkcs7`, `pgp`, `provider.<name>`. */
  readonly annotationId: string;
  /** Wraps `privateOptionsJson` for this scheme's recipients; `undefined` when the config names none. */
  wrap(ec: EncryptConfig, privateOptionsJson: Uint8Array): Promise<Uint8Array | undefined>;
  /** True when the config holds nothing this scheme could try (ocicrypt's NoPossibleKeys). */
  noPossibleKeys(dc: DecryptConfig): boolean;
  /**
   * Unwraps one blob (one comma-separated element of the annotation, base64-decoded) to the
   * private-options JSON. Throws an Error whose message names the scheme and the keys tried.
   */
  unwrap(dc: DecryptConfig, blob: Uint8Array): Promise<Uint8Array>;
}
