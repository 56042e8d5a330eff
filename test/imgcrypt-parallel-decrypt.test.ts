/**
 * The stream processor's decryption with the HMAC on a worker thread (parallel-decrypt.ts,
 * hmac-worker.ts, shared-chunk-reader.ts), reading real files through small chunks and pools so
 * that every path runs: round trips of any size (empty, under the hold-back, one chunk, chunk
 * boundaries, many chunks), corruption in the last chunk and in every single byte, a worker
 * thread that dies mid-layer and a read error — each failure throws and never releases the
 * held-back tail; and that a chunk is not overwritten while the consumer may still be writing it.
 * Then the built ctd-decoder: a layer of many chunks, fused mode (--decompress), and non-blocking
 * pipes, also run from source without node:ffi (the EAGAIN fallback and Node's Decipher).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HmacWorker } from '../processors/imgcrypt/hmac-worker.ts';
import { generateLayerKeys, LayerCipher, LayerIntegrityError } from '../processors/imgcrypt/layer-cipher.ts';
import type { LayerKeyMaterial } from '../processors/imgcrypt/options-json.ts';
import { decryptSharedChunks, type ParallelDecryptOptions } from '../processors/imgcrypt/parallel-decrypt.ts';
import { SharedChunkReader } from '../processors/imgcrypt/shared-chunk-reader.ts';
import { builtBinary, repoRoot } from './support/built-binary.ts';
import { runThroughSlowNonBlockingPipes } from './support/slow-nonblocking-pipes.ts';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgcrypt-parallel-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function encrypt(plain: Buffer): { ct: Buffer; keys: LayerKeyMaterial } {
  const fresh = generateLayerKeys();
  const cipher = new LayerCipher(fresh);
  const ct = cipher.update(plain);
  return { ct, keys: { ...fresh, hmac: cipher.finish() } };
}

let files = 0;
function layerFile(bytes: Buffer): string {
  const file = path.join(dir, `layer-${files++}`);
  fs.writeFileSync(file, bytes);
  return file;
}

interface Setup extends ParallelDecryptOptions {
  readonly chunk: number;
  readonly pool?: number;
  /** Called with the worker once `after` plaintext chunks have come out. */
  readonly sabotage?: { after: number; act: (hmac: HmacWorker) => Promise<unknown> };
}

/**
 * Decrypts `file` as the processor does; returns what was released and the error, if any.
 * Checks the reuse rule on the way: a chunk must still hold its bytes when the next one arrives
 * (the processor's writer is still writing it then).
 */
async function decryptFile(file: string, keys: LayerKeyMaterial, setup: Setup): Promise<{ out: Buffer; err?: Error }> {
  const hmac = new HmacWorker();
  const reader = new SharedChunkReader(file, setup.chunk, setup.pool ?? 3);
  const out: Buffer[] = [];
  let previous: { view: Buffer; copy: Buffer } | undefined;
  try {
    let n = 0;
    for await (const piece of decryptSharedChunks(reader, keys, hmac, setup)) {
      if (previous) expect(previous.view.equals(previous.copy), `chunk ${n} overwritten while still in use`).toBe(true);
      previous = { view: piece, copy: Buffer.from(piece) };
      out.push(previous.copy);
      n++;
      if (setup.sabotage && n === setup.sabotage.after) await setup.sabotage.act(hmac);
    }
    return { out: Buffer.concat(out) };
  } catch (err) {
    return { out: Buffer.concat(out), err: err as Error };
  } finally {
    await reader.close();
    await hmac.close();
  }
}

describe('parallel layer decryption (HMAC on a worker thread)', () => {
  it('round-trips any size in any chunking and pool, the last chunk short, whole or empty', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.integer({ min: 0, max: 40_000 }), fc.constantFrom(0, 1, 4095, 4096, 4097, 8192, 12_288)),
        fc.constantFrom(16, 1000, 4096),
        fc.integer({ min: 2, max: 5 }),
        fc.integer({ min: 0, max: 9000 }),
        fc.boolean(),
        async (size, chunk, pool, holdBytes, forceNode) => {
          const plain = crypto.randomBytes(size);
          const { ct, keys } = encrypt(plain);
          // forceNode: the fallback cipher (fresh buffers) instead of OpenSSL through node:ffi.
          const r = await decryptFile(layerFile(ct), keys, { chunk, pool, holdBytes, gcEvery: 4096, forceNode });
          expect(r.err).toBeUndefined();
          expect(r.out.equals(plain)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('an empty layer decrypts to nothing, and fails when pubopts names another HMAC', async () => {
    const { ct, keys } = encrypt(Buffer.alloc(0));
    const file = layerFile(ct);
    const good = await decryptFile(file, keys, { chunk: 4096 });
    expect(good.err).toBeUndefined();
    expect(good.out.length).toBe(0);
    const hmac = Buffer.from(keys.hmac);
    hmac[31] = hmac[31]! ^ 1;
    const bad = await decryptFile(file, { ...keys, hmac }, { chunk: 4096 });
    expect(bad.err).toBeInstanceOf(LayerIntegrityError);
  });

  it('a layer smaller than the hold-back comes out only once verified: whole, or not at all', async () => {
    const plain = crypto.randomBytes(20_000);
    const { ct, keys } = encrypt(plain);
    // Several chunks, so the worker path runs; all of them stay held (hold-back 64 KiB).
    const good = await decryptFile(layerFile(ct), keys, { chunk: 4096 });
    expect(good.err).toBeUndefined();
    expect(good.out.equals(plain)).toBe(true);
    for (const at of [0, 10_000, 19_999]) {
      const bad = Buffer.from(ct);
      bad[at] = bad[at]! ^ 0x20;
      const r = await decryptFile(layerFile(bad), keys, { chunk: 4096 });
      expect(r.err, `byte ${at}`).toBeInstanceOf(LayerIntegrityError);
      expect(r.out.length, `byte ${at}`).toBe(0);
    }
  });

  it('corruption in the last chunk fails the layer and the held-back tail never comes out', async () => {
    const plain = crypto.randomBytes(50 * 4096 + 123);
    const { ct, keys } = encrypt(plain);
    const holdBytes = 10_000;
    for (const fromEnd of [1, 123, 124, 4096]) {
      const bad = Buffer.from(ct);
      bad[bad.length - fromEnd] = bad[bad.length - fromEnd]! ^ 0x01;
      const r = await decryptFile(layerFile(bad), keys, { chunk: 4096, holdBytes });
      expect(r.err, `${fromEnd} from the end`).toBeInstanceOf(LayerIntegrityError);
      expect(r.err!.message).toMatch(/withheld/);
      expect(plain.length - r.out.length, `${fromEnd} from the end`).toBeGreaterThanOrEqual(holdBytes);
      // What did come out is the true plaintext prefix (CTR: a flipped byte garbles only itself).
      expect(r.out.equals(plain.subarray(0, r.out.length))).toBe(true);
    }
    // Truncated by one byte, and one byte too long.
    for (const bad of [ct.subarray(0, ct.length - 1), Buffer.concat([ct, Buffer.from([7])])]) {
      const r = await decryptFile(layerFile(bad), keys, { chunk: 4096, holdBytes });
      expect(r.err).toBeInstanceOf(LayerIntegrityError);
      expect(plain.length - r.out.length).toBeGreaterThanOrEqual(holdBytes - 1);
    }
  });

  it('every single-byte corruption of a multi-chunk blob fails and releases nothing past the hold-back', async () => {
    const plain = crypto.randomBytes(150);
    const { ct, keys } = encrypt(plain);
    const holdBytes = 48;
    for (let i = 0; i < ct.length; i++) {
      const bad = Buffer.from(ct);
      bad[i] = bad[i]! ^ (1 + (i % 255));
      const r = await decryptFile(layerFile(bad), keys, { chunk: 32, pool: 2, holdBytes });
      expect(r.err, `byte ${i}`).toBeInstanceOf(LayerIntegrityError);
      expect(r.out.length, `byte ${i}`).toBeLessThanOrEqual(plain.length - holdBytes);
    }
  });

  it('a worker thread that dies mid-layer fails the layer with a clear error, tail withheld', async () => {
    const plain = crypto.randomBytes(64 * 4096);
    const { ct, keys } = encrypt(plain);
    const holdBytes = 8192;
    const r = await decryptFile(layerFile(ct), keys, {
      chunk: 4096,
      pool: 2,
      holdBytes,
      sabotage: { after: 1, act: (hmac) => hmac.crashForTest() },
    });
    expect(r.err).toBeDefined();
    expect(r.err).not.toBeInstanceOf(LayerIntegrityError);
    expect(r.err!.message).toMatch(/HMAC worker thread exited \(code \d+\) before the layer's HMAC was computed/);
    expect(plain.length - r.out.length).toBeGreaterThanOrEqual(holdBytes);
  });

  it('a worker thread closed before the digest fails the layer instead of hanging', async () => {
    const plain = crypto.randomBytes(8 * 4096);
    const { ct, keys } = encrypt(plain);
    const r = await decryptFile(layerFile(ct), keys, { chunk: 4096, pool: 16, holdBytes: 4096, sabotage: { after: 1, act: (hmac) => hmac.close() } });
    expect(r.err).toBeDefined();
    expect(plain.length - r.out.length).toBeGreaterThanOrEqual(4096);
  });

  it('a read error fails the layer and names the input', async () => {
    const { keys } = encrypt(Buffer.alloc(10));
    // A directory opens, but read(2) on it fails with EISDIR.
    const r = await decryptFile(dir, keys, { chunk: 4096 });
    expect(r.err!.message).toMatch(/read the layer file: .*EISDIR/);
    expect(r.out.length).toBe(0);
  });
});

describe('ctd-decoder (built binary) with the HMAC on a worker thread', () => {
  const mediaType = 'application/vnd.oci.image.layer.v1.tar+encrypted';
  let priv: string;
  let desc: string;
  let plain: Buffer;
  let blob: Buffer;
  let bin: string;

  beforeAll(() => {
    bin = builtBinary();
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    fs.writeFileSync(path.join(dir, 'pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    priv = path.join(dir, 'priv.pem');
    fs.writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    // Several 1 MiB chunks and a short last one: the worker path of the processor.
    plain = crypto.randomBytes(5 * 1024 * 1024 + 777);
    desc = path.join(dir, 'desc.json');
    const r = spawnSync(bin, ['imgcrypt', 'encrypt', '--recipient', `jwe:${path.join(dir, 'pub.pem')}`, '--annotations', desc, '--media-type', 'application/vnd.oci.image.layer.v1.tar'], {
      input: plain,
      maxBuffer: 1 << 26,
    });
    expect(r.status, r.stderr.toString()).toBe(0);
    blob = r.stdout;
  });

  function run(input: Buffer): { status: number | null; out: Buffer; err: string } {
    const r = spawnSync(bin, ['imgcrypt', 'decrypt', '--key', priv, '--annotations', desc], {
      input,
      env: { ...process.env, STREAM_PROCESSOR_MEDIATYPE: mediaType },
      maxBuffer: 1 << 26,
    });
    return { status: r.status, out: r.stdout, err: r.stderr.toString() };
  }

  it('decrypts a multi-chunk layer exactly, and fails on a flipped byte in its first, middle or last chunk', () => {
    const good = run(blob);
    expect(good.status, good.err).toBe(0);
    expect(good.out.equals(plain)).toBe(true);
    for (const at of [0, 2 * 1024 * 1024 + 5, blob.length - 1]) {
      const bad = Buffer.from(blob);
      bad[at] = bad[at]! ^ 0x80;
      const r = run(bad);
      expect(r.status, `byte ${at}`).toBe(1);
      expect(r.err, `byte ${at}`).toMatch(/could not copy data for layer .*layer integrity check failed: HMAC-SHA256/);
      expect(plain.length - r.out.length, `byte ${at}`).toBeGreaterThanOrEqual(64 * 1024);
    }
  });

  it('fused mode (--decompress): decrypts and gunzips a multi-chunk layer, and fails on a flipped last byte', () => {
    const tree = fs.mkdtempSync(path.join(dir, 'tree-'));
    for (let i = 0; i < 6; i++) fs.writeFileSync(path.join(tree, `f${i}`), crypto.randomBytes(600_000 + i * 1000));
    const tar = execFileSync('tar', ['-C', tree, '-cf', '-', '.'], { maxBuffer: 1 << 26 });
    const gz = zlib.gzipSync(tar, { level: 1 });
    const gzDesc = path.join(dir, 'gz-desc.json');
    const enc = spawnSync(bin, ['imgcrypt', 'encrypt', '--recipient', `jwe:${path.join(dir, 'pub.pem')}`, '--annotations', gzDesc, '--media-type', 'application/vnd.oci.image.layer.v1.tar+gzip'], {
      input: gz,
      maxBuffer: 1 << 26,
    });
    expect(enc.status, enc.stderr.toString()).toBe(0);
    expect(enc.stdout.length).toBeGreaterThan(3 * 1024 * 1024);
    const fused = (input: Buffer) =>
      spawnSync(bin, ['imgcrypt', 'decrypt', '--decompress', '--key', priv, '--annotations', gzDesc], {
        input,
        env: { ...process.env, STREAM_PROCESSOR_MEDIATYPE: 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted' },
        maxBuffer: 1 << 26,
      });
    const good = fused(enc.stdout);
    expect(good.status, good.stderr.toString()).toBe(0);
    expect(good.stdout.equals(tar)).toBe(true);
    const bad = Buffer.from(enc.stdout);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0x01;
    const r = fused(bad);
    expect(r.status).toBe(1);
    expect(r.stderr.toString()).toMatch(/layer integrity check failed: HMAC-SHA256/);
    expect(r.stdout.length).toBeLessThan(tar.length);
  });

  // From source without node:ffi, the pipes stay non-blocking (EAGAIN: the rest of stdin comes
  // from process.stdin, copied into the shared pool) and AES runs in Node's Decipher.
  it.each([
    ['the built binary', () => [bin]],
    ['from source without node:ffi', () => [process.execPath, '--no-experimental-ffi', '--no-warnings', path.join(repoRoot, 'src/cli/main.ts')]],
  ])('decrypts correctly when its stdin and stdout are non-blocking pipes and the peers are slow: %s', async (_name, command) => {
    const [exe, ...pre] = command();
    const r = await runThroughSlowNonBlockingPipes({
      argv: [exe!, ...pre, 'imgcrypt', 'decrypt', '--key', priv, '--annotations', desc],
      env: { ...process.env, STREAM_PROCESSOR_MEDIATYPE: mediaType },
      input: blob,
      writeChunk: 200_000,
      readChunk: 64 * 1024,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.equals(plain)).toBe(true);
  });
});
