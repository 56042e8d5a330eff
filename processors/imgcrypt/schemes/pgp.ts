/**
 * PGP key wrapping (ocicrypt keywrap/pgp), with npm `openpgp` doing all of OpenPGP: the
 * private-options JSON becomes one message with a PKESK v3 per recipient, SEIPD v1 (with MDC)
 * under AES-256 and a literal packet of format 't', no file name, date 0 and no compression —
 * what ProtonMail's go-crypto writes for ocicrypt (imgcrypt.md §4 PGP). Recipients are matched
 * by a user ID's name or e-mail, exactly, against binary public keyrings; decryption uses
 * binary secret keyrings (`gpg --export-secret-keys`, not armored) with optional passphrases.
 */
import * as openpgp from 'openpgp';
import type { DecryptConfig, EncryptConfig, GpgPrivateKeyring, KeyWrapper } from '../key-wrapper.ts';

/** Keeps openpgp from choosing anything ocicrypt would not write (AEAD, v6 packets, compression). */
const WRITE_CONFIG: openpgp.PartialConfig = {
  aeadProtect: false,
  preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
  preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
};

export interface PublicKeyring {
  readonly source: string;
  readonly bytes: Uint8Array;
}

async function readKeyring(keyring: PublicKeyring): Promise<openpgp.Key[]> {
  try {
    return await openpgp.readKeys({ binaryKeys: keyring.bytes });
  } catch (error) {
    throw new Error(`PGP: ${keyring.source} is not a binary OpenPGP keyring: ${(error as Error).message}`);
  }
}

function matchesRecipient(key: openpgp.Key, recipient: string): boolean {
  return key.users.some((user) => user.userID !== null && (user.userID.email === recipient || user.userID.name === recipient));
}

/** Picks, for each `pgp:` recipient, the keys in the keyrings whose user ID has that name or e-mail. */
export async function selectRecipientKeys(recipients: readonly string[], keyrings: readonly PublicKeyring[]): Promise<openpgp.Key[]> {
  const keys = (await Promise.all(keyrings.map(readKeyring))).flat();
  const chosen = new Map<string, openpgp.Key>();
  for (const recipient of recipients) {
    const matches = keys.filter((key) => matchesRecipient(key, recipient));
    if (matches.length === 0) {
      const where = keyrings.length > 0 ? keyrings.map((k) => k.source).join(', ') : 'no keyring given';
      throw new Error(`PGP: no public key with name or e-mail "${recipient}" in ${where}`);
    }
    for (const key of matches) chosen.set(key.getFingerprint(), key);
  }
  return [...chosen.values()];
}

export async function encryptPgp(keys: readonly openpgp.Key[], plaintext: Uint8Array): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: plaintext, format: 'text', filename: '', date: new Date(0) });
  return await openpgp.encrypt({ message, encryptionKeys: [...keys], format: 'binary', config: WRITE_CONFIG });
}

async function secretKeys(keyring: GpgPrivateKeyring): Promise<openpgp.PrivateKey[]> {
  const keys = await openpgp.readPrivateKeys({ binaryKeys: keyring.bytes });
  return await Promise.all(
    keys.map(async (key) => {
      if (key.isDecrypted()) return key;
      if (keyring.password === undefined) throw new Error('the secret key is protected and no passphrase was given');
      return await openpgp.decryptKey({ privateKey: key, passphrase: keyring.password });
    }),
  );
}

/** Decrypts with every secret keyring in turn; the error lists each keyring and why it failed. */
export async function decryptPgp(message: Uint8Array, keyrings: readonly GpgPrivateKeyring[]): Promise<Uint8Array> {
  let parsed: openpgp.Message<Uint8Array>;
  try {
    parsed = await openpgp.readMessage({ binaryMessage: message });
  } catch (error) {
    throw new Error(`PGP: the annotation is not an OpenPGP message: ${(error as Error).message}`);
  }
  const wanted = parsed.getEncryptionKeyIDs().map((id) => `0x${id.toHex()}`);
  const failures: string[] = [];
  for (const keyring of keyrings) {
    try {
      const keys = await secretKeys(keyring);
      const { data } = await openpgp.decrypt({ message: parsed, decryptionKeys: keys, format: 'binary' });
      return data;
    } catch (error) {
      failures.push(`${keyring.source}: ${(error as Error).message}`);
    }
  }
  throw new Error(`PGP: no secret key for recipients ${wanted.join(', ') || '(none listed)'}: ${failures.join('; ') || 'no keyrings given'}`);
}

export const pgpKeyWrapper: KeyWrapper = {
  annotationId: 'pgp',
  async wrap(ec: EncryptConfig, privateOptionsJson: Uint8Array): Promise<Uint8Array | undefined> {
    if (ec.pgpRecipients.length === 0) return undefined;
    const keys = await selectRecipientKeys(ec.pgpRecipients, ec.gpgPublicKeyrings);
    return await encryptPgp(keys, privateOptionsJson);
  },
  noPossibleKeys(dc: DecryptConfig): boolean {
    return dc.gpgPrivateKeys.length === 0;
  },
  async unwrap(dc: DecryptConfig, blob: Uint8Array): Promise<Uint8Array> {
    return await decryptPgp(blob, dc.gpgPrivateKeys);
  },
};
