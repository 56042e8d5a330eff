import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptPgp, encryptPgp, pgpKeyWrapper, selectRecipientKeys } from '../processors/imgcrypt/schemes/pgp.ts';
import type { DecryptConfig, EncryptConfig } from '../processors/imgcrypt/key-wrapper.ts';
import { readBlob, readManifests, rewriteOnlyManifest, writeLayout } from './support/imgcrypt-layout.ts';

// Real GnuPG (Debian gnupg 2.2) makes the keys and checks our packets; nothing is mocked.
let home: string;
let publicRing: Uint8Array;
let secretRing: Uint8Array;
let protectedSecretRing: Uint8Array;
const plaintext = Buffer.from('{"symkey":"c3ltbWV0cmlj","digest":"sha256:00","cipheroptions":{"nonce":"bm9uY2U="}}');

async function gpg(args: string[], input?: Uint8Array): Promise<{ stdout: Buffer; stderr: string }> {
  const result = await execa('gpg', ['--batch', '--homedir', home, '--pinentry-mode', 'loopback', ...args], {
    encoding: 'buffer',
    ...(input ? { input } : {}),
  });
  return { stdout: Buffer.from(result.stdout), stderr: Buffer.from(result.stderr).toString('utf8') };
}

/**
 * gpg's binary output (keyrings, messages) through --output to a file, not stdout: gpg 2.2 writing
 * an encrypted message to a pipe or socket sometimes leaves it one byte short, and then refuses
 * it itself ("Invalid packet"): 4 of 400 messages here, none of 400 written to a file.
 */
async function gpgOut(args: string[], input?: Uint8Array): Promise<Buffer> {
  const file = path.join(home, `out-${process.hrtime.bigint()}`);
  try {
    await gpg(['--output', file, ...args], input);
    return fs.readFileSync(file);
  } finally {
    fs.rmSync(file, { force: true });
  }
}

async function makeKey(uid: string, passphrase: string): Promise<void> {
  await gpg(['--passphrase', passphrase, '--quick-gen-key', uid, 'rsa2048', 'sign', 'never']);
  const listing = (await gpg(['--with-colons', '--list-keys', uid])).stdout.toString('utf8');
  const fpr = /^fpr:+([0-9A-F]+):/m.exec(listing)![1]!;
  await gpg(['--passphrase', passphrase, '--quick-add-key', fpr, 'rsa2048', 'encr', 'never']);
}

function dc(partial: Partial<DecryptConfig>): DecryptConfig {
  return { privateKeys: [], x509s: [], gpgPrivateKeys: [], providerParameters: {}, skipped: [], ...partial };
}
function ec(partial: Partial<EncryptConfig>): EncryptConfig {
  return { jwe: [], pkcs7: [], pgpRecipients: [], gpgPublicKeyrings: [], providers: {}, ...partial };
}

beforeAll(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'imgcrypt-gpg-'));
  await makeKey('Alice Tester <alice@example.com>', '');
  await makeKey('Bob Tester <bob@example.com>', 'bob-secret');
  publicRing = await gpgOut(['--export']);
  secretRing = await gpgOut(['--passphrase', '', '--export-secret-keys', 'alice@example.com']);
  protectedSecretRing = await gpgOut(['--passphrase', 'bob-secret', '--export-secret-keys', 'bob@example.com']);
}, 120_000);

afterAll(async () => {
  await execa('gpgconf', ['--homedir', home, '--kill', 'all'], { reject: false });
  fs.rmSync(home, { recursive: true, force: true });
});

describe('PGP key wrapper', () => {
  it('writes PKESK v3 + SEIPD v1 with MDC under AES-256 and a literal "t" packet without name or date', async () => {
    const keys = await selectRecipientKeys(['alice@example.com'], [{ source: 'pub.gpg', bytes: publicRing }]);
    const message = await encryptPgp(keys, plaintext);
    const file = path.join(home, 'msg.gpg');
    fs.writeFileSync(file, message);
    const packets = (await gpg(['--passphrase', '', '--list-packets', file])).stdout.toString('utf8');
    expect(packets).toMatch(/:pubkey enc packet: version 3, algo 1/);
    expect(packets).toMatch(/tag=18 [^\n]*\n:encrypted data packet:\n\s+length: \d+\n\s+mdc_method: 2/);
    expect(packets).toMatch(/:literal data packet:\n\s+mode t \(74\), created 0, name=""/);
    expect(packets).not.toMatch(/compressed packet/);
    const decrypted = await gpg(['--passphrase', '', '--show-session-key', '--decrypt', file]);
    expect(decrypted.stdout).toEqual(plaintext);
    expect(decrypted.stderr).toMatch(/session key: '9:/); // 9 = AES-256
  });

  it('matches recipients by name and by e-mail, one PKESK per distinct key', async () => {
    const keyrings = [{ source: 'pub.gpg', bytes: publicRing }];
    const byName = await selectRecipientKeys(['Alice Tester', 'bob@example.com', 'alice@example.com'], keyrings);
    expect(byName.map((k) => k.getUserIDs()[0]).sort()).toEqual(['Alice Tester <alice@example.com>', 'Bob Tester <bob@example.com>']);
    await expect(selectRecipientKeys(['carol@example.com'], keyrings)).rejects.toThrow(/no public key with name or e-mail "carol@example.com" in pub.gpg/);
    await expect(selectRecipientKeys(['alice'], keyrings)).rejects.toThrow(/"alice"/);
  });

  it('unwraps with a binary secret keyring, using the passphrase when the key is protected', async () => {
    const blob = (await pgpKeyWrapper.wrap(ec({ pgpRecipients: ['bob@example.com'], gpgPublicKeyrings: [{ source: 'pub.gpg', bytes: publicRing }] }), plaintext))!;
    const got = await pgpKeyWrapper.unwrap(dc({ gpgPrivateKeys: [{ source: 'bob.gpg', bytes: protectedSecretRing, password: 'bob-secret' }] }), blob);
    expect(Buffer.from(got)).toEqual(plaintext);
    await expect(pgpKeyWrapper.unwrap(dc({ gpgPrivateKeys: [{ source: 'bob.gpg', bytes: protectedSecretRing }] }), blob)).rejects.toThrow(
      /bob\.gpg: the secret key is protected and no passphrase was given/,
    );
    await expect(pgpKeyWrapper.unwrap(dc({ gpgPrivateKeys: [{ source: 'alice.gpg', bytes: secretRing }] }), blob)).rejects.toThrow(
      /PGP: no secret key for recipients 0x[0-9a-f]{16}: alice\.gpg:/,
    );
    expect(pgpKeyWrapper.noPossibleKeys(dc({}))).toBe(true);
  });

  it('decrypts what gpg encrypts, compressed or not', async () => {
    for (const extra of [[], ['--compress-algo', 'none']]) {
      const message = await gpgOut(['--trust-model', 'always', '--encrypt', '-r', 'alice@example.com', ...extra], plaintext);
      expect(Buffer.from(await decryptPgp(message, [{ source: 'alice.gpg', bytes: secretRing }]))).toEqual(plaintext);
    }
  });

  it('rejects an armored keyring and a garbage annotation with clear errors', async () => {
    const armored = await gpgOut(['--armor', '--export', 'alice@example.com']);
    await expect(selectRecipientKeys(['alice@example.com'], [{ source: 'pub.asc', bytes: armored }])).rejects.toThrow(/pub\.asc is not a binary OpenPGP keyring/);
    await expect(decryptPgp(Buffer.from('not pgp'), [{ source: 'alice.gpg', bytes: secretRing }])).rejects.toThrow(/not an OpenPGP message/);
  });
});

describe('PGP interop with skopeo 1.9.3', () => {
  it('decrypts skopeo-wrapped options, and skopeo decrypts a layer whose pgp annotation we wrote', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgp-skopeo-'));
    try {
      const src = path.join(dir, 'src');
      const enc = path.join(dir, 'enc');
      const out = path.join(dir, 'out');
      const secretFile = path.join(dir, 'alice.gpg');
      fs.writeFileSync(secretFile, secretRing);
      await writeLayout(src, [{ layers: [{ compression: 'gzip', files: { 'hello.txt': 'hello pgp\n' } }] }]);
      // skopeo asks the gpg binary for the public key, so it needs our GNUPGHOME.
      await execa('skopeo', ['copy', '--encryption-key', 'pgp:alice@example.com', `oci:${src}:latest`, `oci:${enc}:latest`], {
        env: { GNUPGHOME: home },
      });
      const layer = readManifests(enc)[0]!.manifest.layers[0]!;
      const annotation = layer.annotations!['org.opencontainers.image.enc.keys.pgp']!;
      expect(annotation.split(',')).toHaveLength(1);
      const theirOptions = await decryptPgp(Buffer.from(annotation, 'base64'), [
        { source: 'alice.gpg', bytes: secretRing },
      ]);
      expect(Object.keys(JSON.parse(Buffer.from(theirOptions).toString('utf8')))).toEqual(['symkey', 'digest', 'cipheroptions']);
      const keys = await selectRecipientKeys(['alice@example.com'], [{ source: 'pub.gpg', bytes: publicRing }]);
      const ours = await encryptPgp(keys, theirOptions);
      rewriteOnlyManifest(enc, (manifest) => {
        manifest.layers[0]!.annotations!['org.opencontainers.image.enc.keys.pgp'] = Buffer.from(ours).toString('base64');
        return manifest;
      });
      await execa('skopeo', ['copy', '--decryption-key', secretFile, `oci:${enc}:latest`, `oci:${out}:latest`], { env: { GNUPGHOME: home } });
      const original = readManifests(src)[0]!.manifest.layers[0]!;
      const decrypted = readManifests(out)[0]!.manifest.layers[0]!;
      expect(decrypted.digest).toBe(original.digest);
      expect(readBlob(out, decrypted.digest)).toEqual(readBlob(src, original.digest));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
