/**
 * encrypt-image / decrypt-image read index.json, manifests, indexes and configs whole, so each is
 * capped (4 MiB for manifests, indexes and index.json; 16 MiB for configs) and checked against
 * its descriptor before it is read: a blob that declares too much, is too large on disk (sparse
 * multi-GiB files, so a read would be noticed), never ends (a FIFO, /dev/zero) or differs from its
 * descriptor in size or digest is refused with a message naming the blob, the cap and the size.
 * Layer blobs are streamed, but their size and digest are checked against the descriptor too.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cryptImage, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, type ImageCryptOptions } from '../processors/imgcrypt/image-crypt.ts';
import { DecryptConfigBuilder } from '../processors/imgcrypt/decrypt-config.ts';
import { parseRecipients } from '../processors/imgcrypt/recipients.ts';
import { builtBinary } from './support/built-binary.ts';
import { blobFile, putBlob, readBlob, readManifests, rewriteOnlyManifest, writeLayout, type LayoutIndex, type LayoutManifest } from './support/imgcrypt-layout.ts';

const GiB = 1024 * 1024 * 1024;
let dir: string;
let pub: string;
let key: string;
let counter = 0;

function fresh(name: string): string {
  return path.join(dir, `${name}-${counter++}`);
}

function encrypt(src: string, dst = fresh('out')): ImageCryptOptions {
  return { src, dst, operation: { kind: 'encrypt', ec: parseRecipients([`jwe:${pub}`]) } };
}

function decrypt(src: string, dst = fresh('out')): ImageCryptOptions {
  const builder = new DecryptConfigBuilder();
  builder.addKeyFile(key, fs.readFileSync(key));
  return { src, dst, operation: { kind: 'decrypt', dc: builder.build() } };
}

async function oneImage(name: string): Promise<string> {
  const src = fresh(name);
  await writeLayout(src, [{ layers: [{ compression: 'gzip', files: { a: `${name}\n` } }] }]);
  return src;
}

function readIndex(layout: string): LayoutIndex {
  return JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as LayoutIndex;
}

function writeIndex(layout: string, index: LayoutIndex): void {
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify(index));
}

/** Points index.json's only entry at a blob file replaced by `make` (digest kept: the cap comes first). */
function replaceTopBlob(layout: string, make: (file: string) => void, declared?: number): string {
  const index = readIndex(layout);
  const top = index.manifests[0]!;
  const file = blobFile(layout, top.digest);
  fs.rmSync(file);
  make(file);
  if (declared !== undefined) writeIndex(layout, { ...index, manifests: [{ ...top, size: declared }] });
  return top.digest;
}

/** The error a promise rejects with; a resolution fails the test. */
async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection, but it resolved');
}

function sparse(file: string, size: number): void {
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgcrypt-caps-'));
  pub = path.join(dir, 'pub.pem');
  key = path.join(dir, 'key.pem');
  const r1 = spawnSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], { encoding: 'utf8' });
  const r2 = spawnSync('openssl', ['pkey', '-in', key, '-pubout', '-out', pub], { encoding: 'utf8' });
  if (r1.status !== 0 || r2.status !== 0) throw new Error(`openssl: ${r1.stderr}${r2.stderr}`);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('manifest, index and config caps', () => {
  it('the caps are 4 MiB for manifests and indexes and 16 MiB for configs', () => {
    expect(MAX_MANIFEST_BYTES).toBe(4 * 1024 * 1024);
    expect(MAX_CONFIG_BYTES).toBe(16 * 1024 * 1024);
  });

  it('a manifest whose descriptor declares more than the cap is refused without opening it', async () => {
    const src = await oneImage('declared');
    // A 6 GiB sparse file: reading it whole would fail or exhaust memory, so a clean message proves it was not read.
    const digest = replaceTopBlob(src, (f) => sparse(f, 6 * GiB), 6 * GiB);
    await expect(cryptImage(encrypt(src))).rejects.toThrow(
      `manifest ${digest}: its descriptor declares ${6 * GiB} bytes, larger than the 4 MiB limit for manifests and indexes; not read`,
    );
  });

  it('a manifest larger on disk than the cap is refused from its size alone, whatever its descriptor says', async () => {
    const src = await oneImage('ondisk');
    const digest = replaceTopBlob(src, (f) => sparse(f, 5 * GiB));
    const error = await failure(cryptImage(decrypt(src)));
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toContain(`manifest ${digest}: ${blobFile(src, digest)} is ${5 * GiB} bytes, larger than the 4 MiB limit for manifests and indexes`);
  });

  it('a manifest that never ends (a FIFO, a link to /dev/zero) is refused as not a regular file, without blocking', async () => {
    const fifoSrc = await oneImage('fifo');
    const fifoDigest = replaceTopBlob(fifoSrc, (f) => {
      const r = spawnSync('mkfifo', [f]);
      if (r.status !== 0) throw new Error(`mkfifo: ${r.stderr}`);
    });
    await expect(cryptImage(encrypt(fifoSrc))).rejects.toThrow(`manifest ${fifoDigest}: ${blobFile(fifoSrc, fifoDigest)} is not a regular file`);
    const zeroSrc = await oneImage('zero');
    const zeroDigest = replaceTopBlob(zeroSrc, (f) => fs.symlinkSync('/dev/zero', f));
    await expect(cryptImage(encrypt(zeroSrc))).rejects.toThrow(`manifest ${zeroDigest}: ${blobFile(zeroSrc, zeroDigest)} is not a regular file`);
  });

  it('an oversized index.json is refused naming the file, its size and the cap', async () => {
    const src = await oneImage('bigindex');
    fs.rmSync(path.join(src, 'index.json'));
    sparse(path.join(src, 'index.json'), 3 * GiB);
    await expect(cryptImage(encrypt(src))).rejects.toThrow(
      `${src}/index.json: ${path.join(src, 'index.json')} is ${3 * GiB} bytes, larger than the 4 MiB limit for manifests and indexes`,
    );
  });

  it('a nested index over the cap is refused as an index', async () => {
    const src = fresh('nested');
    await writeLayout(src, [
      { platform: { os: 'linux', architecture: 'amd64' }, layers: [{ compression: 'tar', files: { a: 'a\n' } }] },
      { platform: { os: 'linux', architecture: 'arm64' }, layers: [{ compression: 'tar', files: { b: 'b\n' } }] },
    ]);
    const top = readIndex(src).manifests[0]!;
    expect(top.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    writeIndex(src, { ...readIndex(src), manifests: [{ ...top, size: MAX_MANIFEST_BYTES + 1 }] });
    await expect(cryptImage(encrypt(src))).rejects.toThrow(
      `index ${top.digest}: its descriptor declares ${MAX_MANIFEST_BYTES + 1} bytes, larger than the 4 MiB limit for manifests and indexes`,
    );
  });

  it('a config is capped at 16 MiB when it has to be read for the platform', async () => {
    const src = await oneImage('config');
    const config = readManifests(src)[0]!.manifest.config;
    // Grow the config on disk past the cap while keeping the descriptor: fstat catches it before a read.
    fs.rmSync(blobFile(src, config.digest));
    sparse(blobFile(src, config.digest), MAX_CONFIG_BYTES + 4096);
    await expect(cryptImage(encrypt(src))).rejects.toThrow(
      `config ${config.digest}: ${blobFile(src, config.digest)} is ${MAX_CONFIG_BYTES + 4096} bytes, larger than the 16 MiB limit for image configs`,
    );
  });

  it('a manifest just under the cap is read and encrypted', async () => {
    const src = await oneImage('under');
    const index = readIndex(src);
    const manifest = JSON.parse(readBlob(src, index.manifests[0]!.digest).toString('utf8')) as LayoutManifest;
    const base = Buffer.byteLength(JSON.stringify({ ...manifest, annotations: { pad: '' } }));
    const padded = Buffer.from(JSON.stringify({ ...manifest, annotations: { pad: 'x'.repeat(MAX_MANIFEST_BYTES - base) } }));
    expect(padded.length).toBe(MAX_MANIFEST_BYTES);
    writeIndex(src, { ...index, manifests: [{ ...index.manifests[0]!, ...putBlob(src, padded) }] });
    const summary = await cryptImage(encrypt(src));
    expect(summary.changed).toHaveLength(1);
  });
});

describe('blobs that differ from their descriptor', () => {
  it('a manifest one byte longer than its descriptor says is refused, naming both sizes', async () => {
    const src = await oneImage('longer');
    const index = readIndex(src);
    const top = index.manifests[0]!;
    writeIndex(src, { ...index, manifests: [{ ...top, size: top.size - 1 }] });
    await expect(cryptImage(encrypt(src))).rejects.toThrow(`manifest ${top.digest}: ${blobFile(src, top.digest)} is ${top.size} bytes but its descriptor says ${top.size - 1}`);
  });

  it('a manifest of the right size but other bytes is refused by its digest', async () => {
    const src = await oneImage('digest');
    const top = readIndex(src).manifests[0]!;
    const file = blobFile(src, top.digest);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 2] = 0x20; // still the same length, no longer the same content
    fs.writeFileSync(file, bytes);
    await expect(cryptImage(encrypt(src))).rejects.toThrow(`manifest ${top.digest} in ${src} does not match its digest`);
  });

  it('a descriptor size that is not a byte count is refused', async () => {
    const src = await oneImage('badsize');
    const index = readIndex(src);
    writeIndex(src, { ...index, manifests: [{ ...index.manifests[0]!, size: -5 }] });
    await expect(cryptImage(encrypt(src))).rejects.toThrow(`descriptor size -5 is not a byte count`);
  });

  it('a layer blob whose size differs from its descriptor is refused before encryption and before decryption', async () => {
    const src = await oneImage('layersize');
    const layer = readManifests(src)[0]!.manifest.layers[0]!;
    fs.appendFileSync(blobFile(src, layer.digest), Buffer.from('trailing junk'));
    const error = await failure(cryptImage(encrypt(src)));
    expect(error.message).toContain(`layer ${layer.digest}: ${blobFile(src, layer.digest)} is ${layer.size + 13} bytes but its descriptor says ${layer.size}`);

    const good = await oneImage('layersize-enc');
    const enc = fresh('enc');
    await cryptImage(encrypt(good, enc));
    const encLayer = readManifests(enc)[0]!.manifest.layers[0]!;
    fs.truncateSync(blobFile(enc, encLayer.digest), encLayer.size - 1);
    const out = fresh('dec');
    const decError = await failure(cryptImage(decrypt(enc, out)));
    expect(decError.message).toContain(`is ${encLayer.size - 1} bytes but its descriptor says ${encLayer.size}`);
    expect(fs.existsSync(path.join(out, 'index.json'))).toBe(false);
  });

  it('an encrypted layer swapped, with its annotations, for another valid one of the same size is refused by its digest', async () => {
    const src = fresh('swap');
    await writeLayout(src, [{ layers: [{ compression: 'tar', files: { a: 'one\n' } }, { compression: 'tar', files: { b: 'two\n' } }] }]);
    const enc = fresh('swap-enc');
    await cryptImage(encrypt(src, enc));
    const [first, second] = readManifests(enc)[0]!.manifest.layers;
    expect(first!.size).toBe(second!.size);
    // Layer 1's ciphertext and key annotations under layer 0's digest: the HMAC checks, only the digest can tell.
    fs.copyFileSync(blobFile(enc, second!.digest), blobFile(enc, first!.digest));
    rewriteOnlyManifest(enc, (m) => ({ ...m, layers: [{ ...first!, annotations: second!.annotations! }, second!] }));
    const out = fresh('swap-out');
    const error = await failure(cryptImage(decrypt(enc, out)));
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toContain(`decrypting layer 0 (${first!.digest})`);
    expect(error.message).toContain(`layer ${first!.digest} in ${enc} does not match its digest (read ${second!.digest})`);
    expect(fs.existsSync(path.join(out, 'index.json'))).toBe(false);
    expect(fs.readdirSync(path.join(out, 'blobs')).filter((n) => n.startsWith('.imgcrypt-'))).toEqual([]);
  });

  it('property: a manifest is read exactly when its descriptor size matches the blob', async () => {
    const src = await oneImage('prop');
    const index = readIndex(src);
    const top = index.manifests[0]!;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: -top.size, max: 64 }), fc.integer({ min: 0, max: 300 }), async (delta, padding) => {
        // A manifest with trailing whitespace (still valid JSON) of `padding` bytes, described as `delta` bytes off.
        const bytes = Buffer.concat([readBlob(src, top.digest), Buffer.alloc(padding, 0x20)]);
        const stored = putBlob(src, bytes);
        writeIndex(src, { ...index, manifests: [{ ...top, digest: stored.digest, size: stored.size + delta }] });
        const result = await cryptImage(encrypt(src)).then(
          () => 'ok',
          (e: unknown) => (e as Error).message,
        );
        if (delta === 0) expect(result).toBe('ok');
        else expect(result).toContain(`is ${stored.size} bytes but its descriptor says ${stored.size + delta}`);
      }),
      { numRuns: 40 },
    );
  });
});

describe('through the CLI', () => {
  it('decrypt-image exits 1 with the capped blob named', async () => {
    const src = await oneImage('cli');
    const digest = replaceTopBlob(src, (f) => sparse(f, 2 * GiB), 2 * GiB);
    const r = await execa(builtBinary(), ['imgcrypt', 'decrypt-image', '--key', key, src, fresh('cli-out')], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`decrypt-image: manifest ${digest}: its descriptor declares ${2 * GiB} bytes, larger than the 4 MiB limit`);
  });
});
