/**
 * Gathers a DecryptConfig (key-wrapper.ts) from the three places keys come from: `--key` specs
 * (errors are fatal: the user named the file), the keys directory (unusable files are skipped
 * and listed, so one stray README does not stop every pull) and the payload's
 * `DecryptConfig.Parameters` (ocicrypt's `privkeys`, `privkeys-passwords`, `x509s`,
 * `gpg-privatekeys`, `gpg-privatekeys-passwords`, and key-provider names).
 */
import type { DecryptConfig, GpgPrivateKeyring, LoadedCertificate, LoadedPrivateKey } from './key-wrapper.ts';
import { readKeyFile } from './key-material.ts';
import { readKeysDirectory } from './keys-dir.ts';

/** ocicrypt's DecryptConfig.Parameters keys that are not key-provider names. */
const KNOWN_PARAMETERS = new Set([
  'privkeys', 'privkeys-passwords', 'x509s', 'gpg-privatekeys', 'gpg-privatekeys-passwords', 'pkcs11-yamls', 'pkcs11-config',
]);

export class DecryptConfigBuilder {
  private readonly privateKeys: LoadedPrivateKey[] = [];
  private readonly x509s: LoadedCertificate[] = [];
  private readonly gpgPrivateKeys: GpgPrivateKeyring[] = [];
  private readonly providerParameters: Record<string, string> = {};
  private readonly skipped: { source: string; reason: string }[] = [];

  /** Adds one key file; throws (with the source named) when it is not usable for decryption. */
  addKeyFile(source: string, bytes: Uint8Array, password?: string): void {
    let content;
    try {
      content = readKeyFile(bytes, password);
    } catch (err) {
      throw new Error(`${source}: ${(err as Error).message}`, { cause: err });
    }
    switch (content.kind) {
      case 'private-key':
        this.privateKeys.push({ source, key: content.key });
        return;
      case 'certificate':
        this.x509s.push({ source, cert: content.cert });
        return;
      case 'gpg-secret-keyring':
        this.gpgPrivateKeys.push({ source, bytes: Uint8Array.from(bytes), ...(password !== undefined ? { password } : {}) });
        return;
      case 'public-key':
        throw new Error(`${source}: a public key; decryption needs the private key`);
      case 'gpg-public-keyring':
        throw new Error(`${source}: an OpenPGP public keyring; decryption needs the secret keys (gpg --export-secret-keys)`);
    }
  }

  /** Adds a file if usable, else records it as skipped; returns the reason when skipped. */
  tryAddKeyFile(source: string, bytes: Uint8Array): string | undefined {
    try {
      this.addKeyFile(source, bytes);
      return undefined;
    } catch (err) {
      const reason = (err as Error).message.startsWith(`${source}: `) ? (err as Error).message.slice(source.length + 2) : (err as Error).message;
      this.skipped.push({ source, reason });
      return reason;
    }
  }

  /** Every usable file of a keys directory; returns warnings (one line each) for what was skipped. */
  addKeysDirectory(dir: string): string[] {
    const { files, problems } = readKeysDirectory(dir);
    const warnings: string[] = [];
    for (const p of problems) {
      this.skipped.push(p);
      warnings.push(`${p.source}: skipped: ${p.reason}`);
    }
    for (const f of files) {
      const reason = this.tryAddKeyFile(f.path, f.bytes);
      if (reason !== undefined) warnings.push(`${f.path}: skipped: ${reason}`);
    }
    return warnings;
  }

  addProvider(name: string, params: string): void {
    this.providerParameters[name] = params;
  }

  /**
   * The payload's DecryptConfig.Parameters (values already base64-decoded; null elements are Go's
   * nil []byte). Passwords are index-aligned with their keys.
   */
  addPayloadParameters(parameters: Readonly<Record<string, readonly (Buffer | null)[]>>): void {
    const text = (b: Buffer | null | undefined): string | undefined => (b === null || b === undefined || b.length === 0 ? undefined : b.toString('utf8'));
    const privkeys = parameters.privkeys ?? [];
    const passwords = parameters['privkeys-passwords'] ?? [];
    privkeys.forEach((bytes, i) => {
      if (bytes !== null) this.addKeyFile(`payload privkeys[${i}]`, bytes, text(passwords[i]));
    });
    (parameters.x509s ?? []).forEach((bytes, i) => {
      if (bytes !== null) this.addKeyFile(`payload x509s[${i}]`, bytes);
    });
    const gpgPasswords = parameters['gpg-privatekeys-passwords'] ?? [];
    (parameters['gpg-privatekeys'] ?? []).forEach((bytes, i) => {
      if (bytes === null) return;
      const password = text(gpgPasswords[i]);
      this.gpgPrivateKeys.push({ source: `payload gpg-privatekeys[${i}]`, bytes: Uint8Array.from(bytes), ...(password !== undefined ? { password } : {}) });
    });
    for (const [name, values] of Object.entries(parameters)) {
      if (KNOWN_PARAMETERS.has(name)) continue;
      this.providerParameters[name] = text(values[0]) ?? 'Enabled';
    }
  }

  build(): DecryptConfig {
    return {
      privateKeys: [...this.privateKeys],
      x509s: [...this.x509s],
      gpgPrivateKeys: [...this.gpgPrivateKeys],
      providerParameters: { ...this.providerParameters },
      skipped: [...this.skipped],
    };
  }
}
