/**
 * encrypt-image / decrypt-image on OCI layouts: round trips, ctr-enc style layer and platform
 * selection, and interop with skopeo 1.9.3 in both directions (jwe RSA and EC, pkcs7, pgp).
 * The CLI cases run the built SEA (npm run build first).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cryptImage } from '../processors/imgcrypt/image-crypt.ts';
import { parseRecipients } from '../processors/imgcrypt/recipients.ts';
import { DecryptConfigBuilder } from '../processors/imgcrypt/decrypt-config.ts';
import { builtBinary } from './support/built-binary.ts';
import { blobFile, readBlob, readManifests, sha256, writeLayout, type LayerSpec, type LayoutManifest } from './support/imgcrypt-layout.ts';
import { writeCommandProvider } from './support/keyprovider-fixture.ts';

const fixtures = path.join(import.meta.dirname, 'fixtures/imgcrypt');
const ENC_PREFIX = 'org.opencontainers.image.enc.';
let dir: string;
let rsaPub: string;
let rsaKey: string;
let ecPub: string;
let ecKey: string;
let otherKey: string;

function writeKeyPair(name: string, type: 'rsa' | 'ec'): { pub: string; key: string } {
  const pair = type === 'rsa' ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }) : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = path.join(dir, `${name}.pub.pem`);
  const key = path.join(dir, `${name}.pem`);
  fs.writeFileSync(pub, pair.publicKey.export({ type: 'spki', format: 'pem' }));
  fs.writeFileSync(key, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return { pub, key };
}

async function outrigger(args: string[], env: Record<string, string> = {}) {
  return await execa(builtBinary(), args, { reject: false, env });
}

/** Every layer of every manifest, with the blob bytes. */
function layerBlobs(layout: string): { mediaType: string; digest: string; bytes: Buffer; annotations?: Record<string, string> }[] {
  return readManifests(layout).flatMap(({ manifest }) =>
    manifest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, bytes: readBlob(layout, l.digest), ...(l.annotations ? { annotations: l.annotations } : {}) })),
  );
}

/** Checks that every descriptor in the layout points at a blob of that digest and size. */
function expectConsistent(layout: string): void {
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; size: number }[] };
  const check = (d: { digest: string; size: number }): void => {
    const bytes = fs.readFileSync(blobFile(layout, d.digest));
    expect(sha256(bytes)).toBe(d.digest);
    expect(bytes.length).toBe(d.size);
  };
  const visit = (d: { digest: string; size: number }): void => {
    check(d);
    const json = JSON.parse(readBlob(layout, d.digest).toString('utf8')) as Partial<LayoutManifest> & { manifests?: { digest: string; size: number }[] };
    if (json.manifests) json.manifests.forEach(visit);
    else {
      check(json.config!);
      json.layers!.forEach(check);
    }
  };
  index.manifests.forEach(visit);
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgcrypt-image-'));
  ({ pub: rsaPub, key: rsaKey } = writeKeyPair('rsa', 'rsa'));
  ({ pub: ecPub, key: ecKey } = writeKeyPair('ec', 'ec'));
  otherKey = writeKeyPair('other', 'rsa').key;
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('encrypt-image / decrypt-image round trip', () => {
  it('encrypts tar, gzip and zstd layers as ocicrypt does and decrypts them back to the original layout', async () => {
    const src = path.join(dir, 'rt-src');
    await writeLayout(src, [
      { layers: [{ compression: 'tar', files: { a: 'plain tar\n' } }, { compression: 'gzip', files: { b: 'gzip\n' } }, { compression: 'zstd', files: { c: 'zstd\n' } }] },
    ]);
    const enc = path.join(dir, 'rt-enc');
    const encrypted = await outrigger(['imgcrypt', 'encrypt-image', '--recipient', `jwe:${rsaPub}`, '--recipient', `jwe:${ecPub}`, src, enc]);
    expect(encrypted.stderr).toBe('');
    expect(encrypted.exitCode).toBe(0);
    expect(encrypted.stdout.match(/^encrypted layer \d/gm)).toHaveLength(3);
    expectConsistent(enc);
    const original = layerBlobs(src);
    const layers = layerBlobs(enc);
    expect(layers.map((l) => l.mediaType)).toEqual(original.map((l) => `${l.mediaType}+encrypted`));
    for (const [i, layer] of layers.entries()) {
      expect(layer.bytes.length).toBe(original[i]!.bytes.length);
      expect(layer.bytes.equals(original[i]!.bytes)).toBe(false);
      expect(Object.keys(layer.annotations!).sort()).toEqual([`${ENC_PREFIX}keys.jwe`, `${ENC_PREFIX}pubopts`]);
    }
    // The config (diff_ids) is untouched.
    expect(readManifests(enc)[0]!.manifest.config).toEqual(readManifests(src)[0]!.manifest.config);

    for (const key of [rsaKey, ecKey]) {
      const out = path.join(dir, `rt-out-${path.basename(key)}`);
      const decrypted = await outrigger(['imgcrypt', 'decrypt-image', '--key', key, enc, out]);
      expect(decrypted.exitCode, decrypted.stderr).toBe(0);
      expectConsistent(out);
      expect(readManifests(out).map((m) => m.digest)).toEqual(readManifests(src).map((m) => m.digest));
    }
  });

  it('fails with the layer, the scheme and the key tried when the key is wrong, and writes no index.json', async () => {
    const src = path.join(dir, 'wrong-src');
    await writeLayout(src, [{ layers: [{ compression: 'gzip', files: { a: 'secret\n' } }] }]);
    const enc = path.join(dir, 'wrong-enc');
    expect((await outrigger(['imgcrypt', 'encrypt-image', '--recipient', `jwe:${rsaPub}`, src, enc])).exitCode).toBe(0);
    const out = path.join(dir, 'wrong-out');
    const result = await outrigger(['imgcrypt', 'decrypt-image', '--key', otherKey, enc, out]);
    expect(result.exitCode).toBe(1);
    const layer = readManifests(enc)[0]!.manifest.layers[0]!;
    expect(result.stderr).toContain(`decrypting layer 0 (${layer.digest})`);
    expect(result.stderr).toMatch(/jwe: .*other\.pem/);
    expect(fs.existsSync(path.join(out, 'index.json'))).toBe(false);
    const none = await outrigger(['imgcrypt', 'encrypt-image', src, path.join(dir, 'norecip')]);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/no recipients/);
  });

  it('selects layers like ctr-enc (--layer, negative from the top) and platforms (--platform)', async () => {
    const src = path.join(dir, 'sel-src');
    const layers: LayerSpec[] = [
      { compression: 'gzip', files: { l0: '0\n' } },
      { compression: 'gzip', files: { l1: '1\n' } },
      { compression: 'gzip', files: { l2: '2\n' } },
    ];
    await writeLayout(src, [
      { platform: { os: 'linux', architecture: 'amd64' }, layers },
      { platform: { os: 'linux', architecture: 'arm64' }, layers: [{ compression: 'gzip', files: { arm: 'arm\n' } }] },
    ]);
    const ec = parseRecipients([`jwe:${rsaPub}`]);
    const enc = path.join(dir, 'sel-enc');
    const summary = await cryptImage({ src, dst: enc, operation: { kind: 'encrypt', ec }, layers: [0, -1], platforms: ['linux/amd64'] });
    expectConsistent(enc);
    expect(summary.changed.map((c) => c.index)).toEqual([0, 2]);
    expect(summary.manifestsSkipped).toHaveLength(1);
    const [amd, arm] = readManifests(enc);
    expect(amd!.platform).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(amd!.manifest.layers.map((l) => l.mediaType.endsWith('+encrypted'))).toEqual([true, false, true]);
    expect(arm!.manifest.layers[0]!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(arm!.digest).toBe(readManifests(src)[1]!.digest);

    // Encrypting again adds nothing to layers that are already encrypted.
    const again = await cryptImage({ src: enc, dst: path.join(dir, 'sel-again'), operation: { kind: 'encrypt', ec }, platforms: ['linux/amd64'] });
    expect(again.changed.map((c) => c.index)).toEqual([1]);
    expect(again.kept.map((k) => k.reason)).toEqual(['already encrypted', 'already encrypted']);

    const builder = new DecryptConfigBuilder();
    builder.addKeyFile(rsaKey, fs.readFileSync(rsaKey));
    const out = path.join(dir, 'sel-out');
    await cryptImage({ src: enc, dst: out, operation: { kind: 'decrypt', dc: builder.build() } });
    expect(readManifests(out).map((m) => m.digest)).toEqual(readManifests(src).map((m) => m.digest));
  });

  it('wraps for pgp: and provider: recipients and unwraps with the matching keys', async () => {
    const home = fs.mkdtempSync(path.join(dir, 'gnupg-'));
    const gpg = (args: string[]) => execa('gpg', ['--batch', '--homedir', home, '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { encoding: 'buffer' });
    await gpg(['--quick-gen-key', 'Carol <carol@example.com>', 'rsa2048', 'sign', 'never']);
    const fpr = /^fpr:+([0-9A-F]+):/m.exec(Buffer.from((await gpg(['--with-colons', '--list-keys', 'carol@example.com'])).stdout).toString())![1]!;
    await gpg(['--quick-add-key', fpr, 'rsa2048', 'encr', 'never']);
    const secret = path.join(dir, 'carol.gpg');
    // Through --output, not stdout (see imgcrypt-pgp.test.ts gpgOut).
    await gpg(['--output', secret, '--export-secret-keys']);
    const provider = writeCommandProvider(fs.mkdtempSync(path.join(dir, 'kp-')), 'image-secret');
    const providerConfig = path.join(dir, 'kp.json');
    fs.writeFileSync(providerConfig, JSON.stringify({ 'key-providers': { testkms: { cmd: { path: provider.path, args: [] } } } }));
    const env = { OCICRYPT_KEYPROVIDER_CONFIG: providerConfig };

    const src = path.join(dir, 'pgp-src');
    await writeLayout(src, [{ layers: [{ compression: 'gzip', files: { p: 'pgp and provider\n' } }] }]);
    const enc = path.join(dir, 'pgp-enc');
    const encrypted = await outrigger(['imgcrypt', 'encrypt-image', '--gpg-homedir', home, '--recipient', 'pgp:carol@example.com', '--recipient', 'provider:testkms:key-9', src, enc], env);
    expect(encrypted.exitCode, encrypted.stderr).toBe(0);
    const annotations = readManifests(enc)[0]!.manifest.layers[0]!.annotations!;
    expect(Object.keys(annotations).sort()).toEqual([`${ENC_PREFIX}keys.pgp`, `${ENC_PREFIX}keys.provider.testkms`, `${ENC_PREFIX}pubopts`]);

    const viaPgp = await outrigger(['imgcrypt', 'decrypt-image', '--key', secret, enc, path.join(dir, 'pgp-out1')]);
    expect(viaPgp.exitCode, viaPgp.stderr).toBe(0);
    expect(viaPgp.stdout).toMatch(/key from pgp/);
    const viaProvider = await outrigger(['imgcrypt', 'decrypt-image', '--key', 'provider:testkms', enc, path.join(dir, 'pgp-out2')], env);
    expect(viaProvider.exitCode, viaProvider.stderr).toBe(0);
    expect(viaProvider.stdout).toMatch(/key from provider\.testkms/);
    for (const out of ['pgp-out1', 'pgp-out2']) {
      expect(readManifests(path.join(dir, out))[0]!.digest).toBe(readManifests(src)[0]!.digest);
    }
    await execa('gpgconf', ['--homedir', home, '--kill', 'all'], { reject: false });
  });
});

describe('interop with skopeo 1.9.3', () => {
  it('skopeo decrypts what encrypt-image wrote (jwe RSA, jwe EC, pkcs7) to the original layers', async () => {
    const src = path.join(dir, 'sk1-src');
    await writeLayout(src, [{ layers: [{ compression: 'gzip', files: { a: 'to skopeo\n' } }, { compression: 'gzip', files: { b: 'second\n' } }] }]);
    const enc = path.join(dir, 'sk1-enc');
    const cert = path.join(fixtures, 'pkcs7-cert.pem');
    const result = await outrigger(['imgcrypt', 'encrypt-image', '--recipient', `jwe:${rsaPub}`, '--recipient', `jwe:${ecPub}`, '--recipient', `pkcs7:${cert}`, src, enc]);
    expect(result.exitCode, result.stderr).toBe(0);
    for (const keys of [[rsaKey], [ecKey], [path.join(fixtures, 'pkcs7-key.pem'), cert]]) {
      const out = path.join(dir, `sk1-out-${path.basename(keys[0]!)}`);
      await execa('skopeo', ['copy', ...keys.flatMap((k) => ['--decryption-key', k]), `oci:${enc}:latest`, `oci:${out}:latest`]);
      const decrypted = layerBlobs(out);
      expect(decrypted.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+gzip']);
      expect(decrypted.map((l) => l.bytes)).toEqual(layerBlobs(src).map((l) => l.bytes));
      expect(decrypted.every((l) => l.annotations === undefined)).toBe(true);
    }
  });

  it('decrypt-image decrypts what skopeo encrypted (jwe RSA, jwe EC, pkcs7) to the original layers', async () => {
    const src = path.join(dir, 'sk2-src');
    await writeLayout(src, [{ layers: [{ compression: 'gzip', files: { a: 'from skopeo\n' } }] }]);
    const cert = path.join(fixtures, 'pkcs7-cert.pem');
    for (const [recipient, keys] of [
      [`jwe:${rsaPub}`, [rsaKey]],
      [`jwe:${ecPub}`, [ecKey]],
      [`pkcs7:${cert}`, [path.join(fixtures, 'pkcs7-key.pem'), cert]],
    ] as const) {
      const enc = path.join(dir, `sk2-enc-${recipient.split(':')[0]}-${path.basename(keys[0]!)}`);
      await execa('skopeo', ['copy', '--encryption-key', recipient, `oci:${src}:latest`, `oci:${enc}:latest`]);
      const out = `${enc}-out`;
      const result = await outrigger(['imgcrypt', 'decrypt-image', ...keys.flatMap((k) => ['--key', k]), enc, out]);
      expect(result.exitCode, result.stderr).toBe(0);
      expectConsistent(out);
      expect(layerBlobs(out).map((l) => [l.mediaType, l.bytes])).toEqual(layerBlobs(src).map((l) => [l.mediaType, l.bytes]));
    }
  });
});
