/**
 * convert-image on OCI layouts (tar in, directory and tar out): every gzip/tar layer becomes a
 * verifiable eStargz blob, the config's diff_id is sha256(gunzip(new layer)), the layer carries
 * the toc.digest and uncompressed-size annotations, and the image name annotation survives.
 * (That containerd imports and runs the result is in test/e2e/estargz-processor.test.ts.)
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import tarStream from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertImage } from '../processors/estargz/convert-image.ts';
import { readStoredToc } from '../processors/estargz/run-inspect.ts';
import { unpackLayer } from '../processors/estargz/unpack.ts';
import { unpackAnyLayer } from '../processors/estargz/unpack-any.ts';
import { Writable } from 'node:stream';
import { type BuiltImage, buildTestImages } from '../scripts/test-images.ts';

let dir: string;
let images: BuiltImage[];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'estargz-convert-'));
  images = await buildTestImages({ outDir: dir, salt: 'convert-test', media: ['gzip', 'tar', 'zstd'] });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blob = (root: string, digest: string) => fs.readFileSync(path.join(root, 'blobs/sha256', digest.slice(7)));

function check(root: string, name: string): { layer: Buffer; diffId: string } {
  const index = JSON.parse(fs.readFileSync(path.join(root, 'index.json'), 'utf8'));
  expect(index.manifests).toHaveLength(1);
  expect(index.manifests[0].annotations['io.containerd.image.name']).toBe(name);
  const manifest = JSON.parse(blob(root, index.manifests[0].digest).toString());
  expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  const config = JSON.parse(blob(root, manifest.config.digest).toString());
  const [desc] = manifest.layers;
  const layer = blob(root, desc.digest);
  expect(sha256(layer)).toBe(desc.digest);
  expect(layer.length).toBe(desc.size);
  expect(desc.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
  const gunzipped = zlib.gunzipSync(layer);
  expect(config.rootfs.diff_ids).toEqual([sha256(gunzipped)]);
  expect(desc.annotations['io.containers.estargz.uncompressed-size']).toBe(String(gunzipped.length));
  const file = path.join(dir, `layer-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(file, layer);
  expect(desc.annotations['containerd.io/snapshot/stargz/toc.digest']).toBe(readStoredToc(file).digest);
  return { layer, diffId: config.rootfs.diff_ids[0] };
}

describe('estargz convert-image', () => {
  it('converts a tar+gzip and an uncompressed-tar image to eStargz (directory output), layers verifiable', async () => {
    for (const kind of ['gzip', 'tar']) {
      const img = images.find((i) => i.name.includes(`-${kind}:`))!;
      const out = path.join(dir, `out-${kind}`);
      const summary = await convertImage(img.file, out, { level: 1 });
      expect(summary).toMatchObject({ manifests: 1, layersConverted: 1, layersKept: 0 });
      const { layer, diffId } = check(out, img.name);
      const parts: Buffer[] = [];
      const toc = JSON.parse(fs.readFileSync(path.join(out, 'index.json'), 'utf8'));
      const manifest = JSON.parse(blob(out, toc.manifests[0].digest).toString());
      const result = await unpackLayer((async function* () {
        yield layer;
      })(), (c) => {
        parts.push(Buffer.from(c));
      }, { tocDigest: manifest.layers[0].annotations['containerd.io/snapshot/stargz/toc.digest'] });
      expect(result.format).toBe('estargz');
      expect(sha256(Buffer.concat(parts))).toBe(diffId);
    }
  });

  it('writes a layout tar when DST ends in .tar; keeps a zstd layer unchanged', async () => {
    const gz = images.find((i) => i.name.includes('-gzip:'))!;
    const out = path.join(dir, 'out.oci.tar');
    await convertImage(gz.file, out, { level: 1 });
    const names: string[] = [];
    const extract = tarStream.extract();
    const unpacked = path.join(dir, 'unpacked');
    const done = (async () => {
      for await (const entry of extract) {
        names.push(entry.header.name);
        const parts: Buffer[] = [];
        for await (const c of entry) parts.push(c as Buffer);
        fs.mkdirSync(path.dirname(path.join(unpacked, entry.header.name)), { recursive: true });
        fs.writeFileSync(path.join(unpacked, entry.header.name), Buffer.concat(parts));
      }
    })();
    extract.end(fs.readFileSync(out));
    await done;
    expect(names.slice(0, 2)).toEqual(['oci-layout', 'index.json']);
    check(unpacked, gz.name);

    const zst = images.find((i) => i.name.includes('-zstd:'))!;
    const kept = await convertImage(zst.file, path.join(dir, 'out-zstd'), {});
    expect(kept).toMatchObject({ layersConverted: 0, layersKept: 1 });
    await expect(convertImage(zst.file, path.join(dir, 'out-zstd'), {})).rejects.toThrow(/already exists/);
  });

  it('--zstdchunked: every layer becomes zstd:chunked whose chunks verify against its TOC on unpack; diff_id = sha256(zstd -d)', async () => {
    const gz = images.find((i) => i.name.includes('-gzip:'))!;
    const root = path.join(dir, 'out-zstdchunked');
    await convertImage(gz.file, root, { compression: 'zstdchunked', level: 3, chunkSize: 64 * 1024 });
    const index = JSON.parse(fs.readFileSync(path.join(root, 'index.json'), 'utf8'));
    const manifest = JSON.parse(blob(root, index.manifests[0].digest).toString());
    const config = JSON.parse(blob(root, manifest.config.digest).toString());
    const [desc] = manifest.layers;
    expect(desc.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    const layer = blob(root, desc.digest);
    const parts: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        parts.push(Buffer.from(chunk));
        done();
      },
    });
    const tocDigest = desc.annotations['containerd.io/snapshot/stargz/toc.digest'];
    const result = await unpackAnyLayer((async function* () {
      yield layer;
    })(), sink, { tocDigest, chunkSize: 1 << 20 });
    expect(result.format).toBe('zstd:chunked');
    expect(result.verified!.chunkDigestsChecked).toBe(result.verified!.chunks);
    expect(result.verified!.chunks).toBeGreaterThan(2);
    const out = Buffer.concat(parts);
    expect(out.equals(zlib.zstdDecompressSync(layer))).toBe(true);
    expect(config.rootfs.diff_ids).toEqual([sha256(out)]);
    // The manifest checksum annotation names the compressed TOC frame, which the unpack also accepts.
    const byChecksum = await unpackAnyLayer((async function* () {
      yield layer;
    })(), new Writable({ write: (_c, _e, done) => done() }), { tocDigest: desc.annotations['io.containers.zstd-chunked.manifest-checksum'], chunkSize: 1 << 20 });
    expect(byChecksum.format).toBe('zstd:chunked');
  });
});
