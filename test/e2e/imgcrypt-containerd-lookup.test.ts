/**
 * The decrypt processor without a payload (`--containerd-address`), in a private containerd 1.6
 * with real runc: plain `ctr images import` of an encrypted image sends no payload, so the
 * processor buffers the layer, finds its descriptor in containerd's content store over gRPC and
 * decrypts with the keys directory. The image runs (diff_id checked by containerd); with a wrong
 * key the import fails with our message naming the scheme and the key file.
 */
import { randomBytes } from 'node:crypto';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltImage, buildTestImages, type LayerEncoder, MEDIA_TYPE_LAYER_TAR } from '../../scripts/test-images.ts';
import { encryptLayerStream } from '../../processors/imgcrypt/layer-crypto.ts';
import { parseRecipients } from '../../processors/imgcrypt/recipients.ts';
import { builtBinary } from '../support/built-binary.ts';
import { useContainerd } from './harness.ts';

const ENCRYPTED_GZIP = `${MEDIA_TYPE_LAYER_TAR}+gzip+encrypted`;
const salt = `imgcrypt-lookup-${process.pid}-${randomBytes(6).toString('hex')}`;
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgcrypt-lookup-e2e-'));
const keysDir = path.join(workDir, 'keys');
const addressFile = path.join(workDir, 'containerd-address');
const pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const publicKeyFile = path.join(workDir, 'pub.pem');

async function encryptBlob(blob: Buffer): Promise<{ blob: Buffer; annotations: Record<string, string> }> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const result = await encryptLayerStream(Readable.from([blob]), out, parseRecipients([`jwe:${publicKeyFile}`]));
  return { blob: Buffer.concat(chunks), annotations: result.annotations };
}

const encryptedGzip: LayerEncoder = {
  kind: 'encrypted-gzip',
  encode: async (tar) => ({ mediaType: ENCRYPTED_GZIP, ...(await encryptBlob(zlib.gzipSync(tar))) }),
};

let images: BuiltImage[] = [];

beforeAll(async () => {
  fs.writeFileSync(publicKeyFile, pair.publicKey.export({ type: 'spki', format: 'pem' }));
  fs.mkdirSync(keysDir, { mode: 0o700 });
  images = await buildTestImages({ outDir: workDir, salt, media: ['encrypted-gzip'], extraEncoders: { 'encrypted-gzip': encryptedGzip } });
});
afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

// containerd's socket is known only once it runs, so the processor is a wrapper that reads it
// from a file the test writes right after the start (argv[0] stays ctd-decoder).
const wrapper = path.join(workDir, 'ctd-decoder-lookup');
fs.writeFileSync(
  wrapper,
  `#!/bin/sh\nexec ${builtBinary('ctd-decoder')} --decryption-keys-path ${keysDir} --containerd-address "$(cat ${addressFile})" "$@"\n`,
  { mode: 0o755 },
);

const ctd = useContainerd({
  streamProcessors: {
    // The id CRI would send a payload to; plain ctr sends none, which is the case under test.
    'io.containerd.ocicrypt.decoder.v1.tar.gzip': { accepts: [ENCRYPTED_GZIP], returns: `${MEDIA_TYPE_LAYER_TAR}+gzip`, path: wrapper, args: [] },
  },
});

describe('imgcrypt decrypt --containerd-address (no payload)', () => {
  beforeAll(() => fs.writeFileSync(addressFile, ctd().address));

  it('fails a plain ctr import with our message when the keys directory holds the wrong key', async () => {
    const img = images[0]!;
    const wrong = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    fs.writeFileSync(path.join(keysDir, 'wrong.pem'), wrong.export({ type: 'pkcs8', format: 'pem' }));
    const r = await ctd().ctr(['images', 'import', img.file], { timeoutMs: 120_000 });
    expect(r.exitCode).not.toBe(0);
    const output = `${r.stdout}\n${r.stderr}`;
    expect(output).toContain(`layer ${img.layerDigest} (${ENCRYPTED_GZIP}, from manifest ${img.manifestDigest} in namespace ${ctd().namespace})`);
    expect(output).toMatch(/no suitable key unwrapper found[\s\S]*jwe: [\s\S]*wrong\.pem/);
    const snapshots = await ctd().ctr(['snapshots', 'ls'], { check: true });
    expect(snapshots.stdout).not.toContain(img.diffId);
    fs.rmSync(path.join(keysDir, 'wrong.pem'));
  });

  it('imports, unpacks and runs an encrypted image whose descriptor it found in the content store', async () => {
    const img = images[0]!;
    fs.writeFileSync(path.join(keysDir, 'right.pem'), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await ctd().importImage(img.file);
    const run = await ctd().run({ image: img.name, args: ['cat', '/etc/outrigger-salt'] });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe(salt);
  });
});
