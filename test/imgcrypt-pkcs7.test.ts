import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa, execaSync } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AsnConvert } from '@peculiar/asn1-schema';
import { ContentInfo, EnvelopedData } from '@peculiar/asn1-cms';
import {
  buildEnvelope,
  decodeGcmParameters,
  decryptPkcs7,
  encodeGoGcmParameters,
  encryptPkcs7,
  pkcs7KeyWrapper,
} from '../processors/imgcrypt/schemes/pkcs7.ts';
import type { DecryptConfig, EncryptConfig, LoadedCertificate, LoadedPrivateKey } from '../processors/imgcrypt/key-wrapper.ts';
import { readBlob, readManifests, rewriteOnlyManifest, writeLayout } from './support/imgcrypt-layout.ts';

const fixtures = path.join(import.meta.dirname, 'fixtures/imgcrypt');
const cert: LoadedCertificate = {
  source: 'pkcs7-cert.pem',
  cert: new crypto.X509Certificate(fs.readFileSync(path.join(fixtures, 'pkcs7-cert.pem'))),
};
const key: LoadedPrivateKey = { source: 'pkcs7-key.pem', key: crypto.createPrivateKey(fs.readFileSync(path.join(fixtures, 'pkcs7-key.pem'))) };
/** The pkcs7 annotation skopeo 1.9.3 (Debian, ocicrypt 1.0.3 + fullsailor pkcs7) wrote for pkcs7-cert.pem. */
const skopeoBlob = Buffer.from(fs.readFileSync(path.join(fixtures, 'pkcs7-skopeo-1.9.3.b64'), 'utf8'), 'base64');

function decryptConfig(partial: Partial<DecryptConfig>): DecryptConfig {
  return { privateKeys: [], x509s: [], gpgPrivateKeys: [], providerParameters: {}, skipped: [], ...partial };
}
function encryptConfig(partial: Partial<EncryptConfig>): EncryptConfig {
  return { jwe: [], pkcs7: [], pgpRecipients: [], gpgPublicKeyrings: [], providers: {}, ...partial };
}


describe('PKCS7 golden bytes against skopeo 1.9.3', () => {
  const contentInfo = AsnConvert.parse(skopeoBlob, ContentInfo);
  const enveloped = AsnConvert.parse(contentInfo.content, EnvelopedData);
  const ktri = enveloped.recipientInfos[0]!.ktri!;
  const encryptedKey = new Uint8Array(ktri.encryptedKey.buffer);
  const params = new Uint8Array(enveloped.encryptedContentInfo.contentEncryptionAlgorithm.parameters!);

  it('reads the observed Go GCM parameters (primitive tag 0x10 around SEQUENCE{[4] nonce, 16})', () => {
    expect(params[0]).toBe(0x10);
    const { nonce, icvLen } = decodeGcmParameters(params);
    expect(nonce.length).toBe(12);
    expect(icvLen).toBe(16);
    expect(Buffer.from(encodeGoGcmParameters(nonce))).toEqual(Buffer.from(params));
  });

  it('decrypts the skopeo envelope (constructed encryptedContent) to the private-options JSON', () => {
    const options = JSON.parse(Buffer.from(decryptPkcs7(skopeoBlob, [cert], [key])).toString('utf8'));
    expect(Object.keys(options)).toEqual(['symkey', 'digest', 'cipheroptions']);
    expect(Buffer.from(options.symkey, 'base64')).toHaveLength(32);
  });

  it('rebuilds the skopeo envelope byte for byte from the same key, nonce and plaintext', () => {
    const contentKey = crypto.privateDecrypt({ key: key.key, padding: crypto.constants.RSA_PKCS1_PADDING }, encryptedKey);
    const { nonce } = decodeGcmParameters(params);
    const plaintext = decryptPkcs7(skopeoBlob, [cert], [key]);
    const rebuilt = buildEnvelope({
      recipients: [{ certificate: cert.cert, encryptedKey }],
      contentKey,
      nonce,
      plaintext,
      encryptedContentForm: 'constructed',
    });
    expect(Buffer.from(rebuilt).toString('hex')).toBe(skopeoBlob.toString('hex'));
    // ocicrypt ≥ 1.2.1 writes the primitive form: same envelope, `80 len` instead of `A0 … 04 len`.
    const primitive = buildEnvelope({ recipients: [{ certificate: cert.cert, encryptedKey }], contentKey, nonce, plaintext });
    expect(primitive.length).toBe(skopeoBlob.length - 3);
    expect(Buffer.from(decryptPkcs7(primitive, [cert], [key]))).toEqual(Buffer.from(plaintext));
  });
});

describe('PKCS7 key wrapper', () => {
  const plaintext = Buffer.from('{"symkey":"AAAA","digest":"sha256:00","cipheroptions":{"nonce":"BBBB"}}');

  it('round-trips through wrap and unwrap and writes what ocicrypt writes', async () => {
    const blob = (await pkcs7KeyWrapper.wrap(encryptConfig({ pkcs7: [cert] }), plaintext))!;
    const enveloped = AsnConvert.parse(AsnConvert.parse(blob, ContentInfo).content, EnvelopedData);
    expect(enveloped.version).toBe(0);
    expect(enveloped.recipientInfos[0]!.ktri!.keyEncryptionAlgorithm.algorithm).toBe('1.2.840.113549.1.1.1');
    expect(enveloped.recipientInfos[0]!.ktri!.keyEncryptionAlgorithm.parameters).toBeUndefined();
    expect(enveloped.encryptedContentInfo.contentEncryptionAlgorithm.algorithm).toBe('2.16.840.1.101.3.4.1.6');
    expect(enveloped.encryptedContentInfo.encryptedContent!.value).toBeDefined();
    const out = await pkcs7KeyWrapper.unwrap(decryptConfig({ privateKeys: [key], x509s: [cert] }), blob);
    expect(Buffer.from(out)).toEqual(plaintext);
  });

  it('does nothing without pkcs7 recipients', async () => {
    expect(await pkcs7KeyWrapper.wrap(encryptConfig({}), plaintext)).toBeUndefined();
    expect(pkcs7KeyWrapper.noPossibleKeys(decryptConfig({}))).toBe(true);
  });

  it('needs the certificate beside the key and says so', async () => {
    const blob = encryptPkcs7([cert], plaintext);
    await expect(pkcs7KeyWrapper.unwrap(decryptConfig({ privateKeys: [key] }), blob)).rejects.toThrow(/recipient certificate is needed.*pkcs7-key\.pem/);
  });

  it('rejects a key that does not match the certificate, naming both', async () => {
    const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const blob = encryptPkcs7([cert], plaintext);
    await expect(
      pkcs7KeyWrapper.unwrap(decryptConfig({ privateKeys: [{ source: 'other.pem', key: other }], x509s: [cert] }), blob),
    ).rejects.toThrow(/pkcs7-cert\.pem.*no private key matches/);
  });

  it('refuses a non-RSA certificate for encryption', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pkcs7-ec-'));
    try {
      const certFile = path.join(dir, 'ec.pem');
      execaSyncOpenssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'k.pem'), '-out', certFile, '-subj', '/CN=ec', '-days', '1']);
      const ec = { source: certFile, cert: new crypto.X509Certificate(fs.readFileSync(certFile)) };
      expect(() => encryptPkcs7([ec], plaintext)).toThrow(/ec key; ocicrypt's PKCS7 supports RSA only/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads envelopes OpenSSL writes: RSA-OAEP and PKCS#1 v1.5 key transport, AES-CBC content', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pkcs7-openssl-'));
    try {
      const input = path.join(dir, 'in');
      fs.writeFileSync(input, plaintext);
      for (const [cipher, extra] of [
        ['-aes-256-cbc', ['-keyopt', 'rsa_padding_mode:oaep']],
        ['-aes-128-cbc', []],
      ] as const) {
        const out = path.join(dir, 'out.der');
        execaSyncOpenssl(['cms', '-encrypt', '-binary', '-outform', 'DER', '-in', input, '-out', out, cipher, '-recip', path.join(fixtures, 'pkcs7-cert.pem'), ...extra]);
        const got = await pkcs7KeyWrapper.unwrap(decryptConfig({ privateKeys: [key], x509s: [cert] }), fs.readFileSync(out));
        expect(Buffer.from(got), cipher).toEqual(plaintext);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('turns a flipped byte in the sealed content into an error, not wrong plaintext', async () => {
    const blob = Buffer.from(encryptPkcs7([cert], plaintext));
    blob[blob.length - 20]! ^= 0x01;
    await expect(pkcs7KeyWrapper.unwrap(decryptConfig({ privateKeys: [key], x509s: [cert] }), blob)).rejects.toThrow(/PKCS7: could not decrypt/);
  });
});

function execaSyncOpenssl(args: string[]): void {
  const result = execaSync('openssl', args, { reject: false });
  if (result.exitCode !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
}
describe('PKCS7 interop with skopeo 1.9.3', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pkcs7-skopeo-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('skopeo decrypts a layer whose pkcs7 annotation we wrote (primitive encryptedContent)', async () => {
    const src = path.join(dir, 'src');
    const enc = path.join(dir, 'enc');
    const out = path.join(dir, 'out');
    await writeLayout(src, [{ layers: [{ compression: 'gzip', files: { 'hello.txt': 'hello pkcs7\n' } }] }]);
    await execa('skopeo', ['copy', '--encryption-key', `pkcs7:${path.join(fixtures, 'pkcs7-cert.pem')}`, `oci:${src}:latest`, `oci:${enc}:latest`]);
    // Re-wrap skopeo's private options with our encoder and put our blob in the annotation.
    rewriteOnlyManifest(enc, (manifest) => {
      const layer = manifest.layers[0]!;
      const theirs = Buffer.from(layer.annotations!['org.opencontainers.image.enc.keys.pkcs7']!, 'base64');
      const options = decryptPkcs7(theirs, [cert], [key]);
      const ours = encryptPkcs7([cert], options);
      expect(Buffer.from(ours).equals(theirs)).toBe(false);
      layer.annotations!['org.opencontainers.image.enc.keys.pkcs7'] = Buffer.from(ours).toString('base64');
      return manifest;
    });
    await execa('skopeo', [
      'copy',
      '--decryption-key', path.join(fixtures, 'pkcs7-key.pem'),
      '--decryption-key', path.join(fixtures, 'pkcs7-cert.pem'),
      `oci:${enc}:latest`, `oci:${out}:latest`,
    ]);
    const [original] = readManifests(src);
    const [decrypted] = readManifests(out);
    expect(decrypted!.manifest.layers[0]!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(decrypted!.manifest.layers[0]!.digest).toBe(original!.manifest.layers[0]!.digest);
    expect(readBlob(out, decrypted!.manifest.layers[0]!.digest)).toEqual(readBlob(src, original!.manifest.layers[0]!.digest));
  });
});
