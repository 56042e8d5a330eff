/**
 * The ocicrypt layer cipher (AES-256-CTR + HMAC-SHA256 over the ciphertext): round trips for
 * any size and chunking, the held-back tail, and that every single-byte corruption of a small
 * encrypted blob fails the HMAC and never yields the whole plaintext — in process for every
 * byte, and through the built `imgcrypt decrypt` for a sample (non-zero exit, output short).
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateLayerKeys, LayerCipher, LayerDecryptTransform, LayerIntegrityError } from '../processors/imgcrypt/layer-cipher.ts';
import type { LayerKeyMaterial } from '../processors/imgcrypt/options-json.ts';
import { builtBinary } from './support/built-binary.ts';

function encrypt(plain: Buffer, cuts: readonly number[]): { ct: Buffer; keys: LayerKeyMaterial } {
  const fresh = generateLayerKeys();
  const cipher = new LayerCipher(fresh);
  const parts: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < plain.length)].sort((a, b) => a - b)) {
    parts.push(cipher.update(plain.subarray(at, cut)));
    at = cut;
  }
  parts.push(cipher.update(plain.subarray(at)));
  return { ct: Buffer.concat(parts), keys: { ...fresh, hmac: cipher.finish() } };
}

function* chunked(data: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

/** Decrypts through LayerDecryptTransform (decrypt-image's path); returns what was released and the error, if any. */
async function decrypt(ct: Buffer, keys: LayerKeyMaterial, chunk: number, holdBytes?: number): Promise<{ out: Buffer; err?: unknown }> {
  const out: Buffer[] = [];
  const transform = new LayerDecryptTransform(keys, holdBytes !== undefined ? { holdBytes } : {});
  try {
    for await (const piece of Readable.from(chunked(ct, chunk), { objectMode: false }).pipe(transform)) out.push(piece as Buffer);
    return { out: Buffer.concat(out) };
  } catch (err) {
    return { out: Buffer.concat(out), err };
  }
}

describe('layer cipher', () => {
  it('round-trips any size (0 included) in any chunking, ciphertext as long as plaintext', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 200_000 }),
        fc.array(fc.integer({ min: 0, max: 200_000 }), { maxLength: 6 }),
        fc.integer({ min: 1, max: 70_000 }),
        async (size, cuts, chunk) => {
          const plain = crypto.randomBytes(size);
          const { ct, keys } = encrypt(plain, cuts);
          expect(ct.length).toBe(plain.length);
          const r = await decrypt(ct, keys, chunk);
          expect(r.err).toBeUndefined();
          expect(r.out.equals(plain)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('holds back the tail: on a bad HMAC at least holdBytes of plaintext never come out', async () => {
    const plain = crypto.randomBytes(300_000);
    const { ct, keys } = encrypt(plain, []);
    const bad = Buffer.from(ct);
    bad[10] = bad[10]! ^ 1;
    const r = await decrypt(bad, keys, 16_384);
    expect(r.err).toBeInstanceOf(LayerIntegrityError);
    expect(plain.length - r.out.length).toBeGreaterThanOrEqual(64 * 1024);
  });

  it('every single-byte corruption of a small blob fails the HMAC and yields nothing of it', async () => {
    const plain = crypto.randomBytes(777);
    const { ct, keys } = encrypt(plain, [100, 500]);
    for (let i = 0; i < ct.length; i++) {
      const bad = Buffer.from(ct);
      bad[i] = bad[i]! ^ (1 + (i % 255));
      const r = await decrypt(bad, keys, 64);
      expect(r.err, `byte ${i}`).toBeInstanceOf(LayerIntegrityError);
      expect(r.out.length, `byte ${i}`).toBe(0);
    }
    // Truncation and extension are corruptions too.
    for (const bad of [ct.subarray(0, ct.length - 1), ct.subarray(1), Buffer.concat([ct, Buffer.from([0])])]) {
      const r = await decrypt(bad, keys, 64);
      expect(r.err).toBeInstanceOf(LayerIntegrityError);
    }
    // A wrong HMAC in pubopts as well.
    const hmac = Buffer.from(keys.hmac);
    hmac[0] = hmac[0]! ^ 0x80;
    expect((await decrypt(ct, { ...keys, hmac }, 64)).err).toBeInstanceOf(LayerIntegrityError);
  });
});

describe('imgcrypt decrypt (built binary) on corrupted layers', () => {
  let dir: string;
  let priv: string;
  let annotations: string;
  let blob: Buffer;
  let plain: Buffer;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgcrypt-corrupt-'));
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    fs.writeFileSync(path.join(dir, 'pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    priv = path.join(dir, 'priv.pem');
    fs.writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    plain = crypto.randomBytes(150_000);
    annotations = path.join(dir, 'desc.json');
    const r = spawnSync(builtBinary(), ['imgcrypt', 'encrypt', '--recipient', `jwe:${path.join(dir, 'pub.pem')}`, '--annotations', annotations, '--media-type', 'application/vnd.oci.image.layer.v1.tar'], { input: plain });
    expect(r.status, r.stderr.toString()).toBe(0);
    blob = r.stdout;
    expect(blob.length).toBe(plain.length);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function run(input: Buffer): { status: number | null; out: Buffer; err: string } {
    const r = spawnSync(builtBinary(), ['imgcrypt', 'decrypt', '--key', priv, '--annotations', annotations], {
      input,
      env: { ...process.env, STREAM_PROCESSOR_MEDIATYPE: 'application/vnd.oci.image.layer.v1.tar+encrypted' },
      maxBuffer: 1 << 26,
    });
    return { status: r.status, out: r.stdout, err: r.stderr.toString() };
  }

  it('decrypts the intact layer exactly', () => {
    const r = run(blob);
    expect(r.status, r.err).toBe(0);
    expect(r.out.equals(plain)).toBe(true);
  });

  it('a flipped byte anywhere (sampled), a truncation or a wrong key: non-zero exit, output short of the plaintext', () => {
    const offsets = [0, 1, 4095, 65_536, 100_000, blob.length - 65_537, blob.length - 1];
    for (const at of offsets) {
      const bad = Buffer.from(blob);
      bad[at] = bad[at]! ^ 0x5a;
      const r = run(bad);
      expect(r.status, `byte ${at}`).not.toBe(0);
      expect(r.err, `byte ${at}`).toMatch(/integrity|HMAC/i);
      expect(r.out.length, `byte ${at}`).toBeLessThan(plain.length);
    }
    const truncated = run(blob.subarray(0, blob.length - 10));
    expect(truncated.status).not.toBe(0);
    expect(truncated.out.length).toBeLessThan(plain.length - 10);
  });
});
