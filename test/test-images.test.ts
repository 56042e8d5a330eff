/**
 * The test-image builder: reproducible bytes, self-consistent OCI layouts (every digest and size
 * written in index, manifest and config matches the blob), and layers that decompress to the
 * busybox rootfs the e2e tests rely on.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import tarStream from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BUSYBOX_APPLETS,
  type BuiltImage,
  buildTestImages,
  DEFAULT_BUSYBOX,
  IMAGE_NAME_FILE,
  SALT_FILE,
} from '../scripts/test-images.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'test-images-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let dirCount = 0;
function freshDir(): string {
  dirCount += 1;
  return path.join(scratch, `out-${dirCount}`);
}

interface TarFile {
  type: string;
  linkname: string | undefined;
  mode: number | undefined;
  content: Buffer;
}

async function readTar(bytes: Buffer): Promise<Map<string, TarFile>> {
  const files = new Map<string, TarFile>();
  const extract = tarStream.extract();
  Readable.from([bytes]).pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    files.set(entry.header.name.replace(/\/$/, ''), {
      type: entry.header.type ?? 'file',
      linkname: entry.header.linkname ?? undefined,
      mode: entry.header.mode,
      content: Buffer.concat(chunks),
    });
  }
  return files;
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function decompress(mediaType: string, blob: Buffer): Buffer {
  if (mediaType.endsWith('+gzip')) return zlib.gunzipSync(blob);
  if (mediaType.endsWith('+zstd')) return zlib.zstdDecompressSync(blob);
  if (mediaType.endsWith('.tar')) return blob;
  throw new Error(`unexpected layer media type ${mediaType}`);
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

function blob(layout: Map<string, TarFile>, d: Descriptor): Buffer {
  const file = layout.get(`blobs/sha256/${d.digest.slice('sha256:'.length)}`);
  if (!file) throw new Error(`blob ${d.digest} missing from the layout`);
  expect(sha256(file.content)).toBe(d.digest);
  expect(file.content.length).toBe(d.size);
  return file.content;
}

/** Walks one OCI-layout tar from index.json down, checking every descriptor against its blob. */
async function verifyLayout(image: BuiltImage): Promise<Map<string, TarFile>> {
  const layout = await readTar(fs.readFileSync(image.file));
  expect(JSON.parse(layout.get('oci-layout')!.content.toString())).toEqual({ imageLayoutVersion: '1.0.0' });
  const index = JSON.parse(layout.get('index.json')!.content.toString()) as { schemaVersion: number; manifests: Descriptor[] };
  expect(index.schemaVersion).toBe(2);
  expect(index.manifests).toHaveLength(1);
  const manifestDesc = index.manifests[0]!;
  expect(manifestDesc.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  expect(manifestDesc.digest).toBe(image.manifestDigest);
  expect(manifestDesc.annotations?.['io.containerd.image.name']).toBe(image.name);

  const manifest = JSON.parse(blob(layout, manifestDesc).toString()) as { config: Descriptor; layers: Descriptor[] };
  expect(manifest.config.digest).toBe(image.configDigest);
  expect(manifest.layers).toHaveLength(1);
  const layerDesc = manifest.layers[0]!;
  expect(layerDesc.mediaType).toBe(image.mediaType);
  expect(layerDesc.digest).toBe(image.layerDigest);

  const config = JSON.parse(blob(layout, manifest.config).toString()) as {
    architecture: string;
    os: string;
    config: { Cmd: string[] };
    rootfs: { type: string; diff_ids: string[] };
  };
  expect(config).toMatchObject({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] } });
  expect(config.rootfs).toEqual({ type: 'layers', diff_ids: [image.diffId] });

  const rootfs = decompress(layerDesc.mediaType, blob(layout, layerDesc));
  expect(sha256(rootfs)).toBe(image.diffId);
  return readTar(rootfs);
}

describe('buildTestImages', () => {
  it('builds one image per layer media type, with fully qualified names', async () => {
    const images = await buildTestImages({ outDir: freshDir() });
    expect(images.map((i) => [i.name, i.mediaType])).toEqual([
      ['docker.io/outrigger/busybox-tar:latest', 'application/vnd.oci.image.layer.v1.tar'],
      ['docker.io/outrigger/busybox-gzip:latest', 'application/vnd.oci.image.layer.v1.tar+gzip'],
      ['docker.io/outrigger/busybox-zstd:latest', 'application/vnd.oci.image.layer.v1.tar+zstd'],
    ]);
    // Each image names itself in its rootfs, so the three never share a diff_id (and a snapshot).
    expect(new Set(images.map((i) => i.diffId)).size).toBe(3);
  });

  it('writes digests and sizes that match the blobs, and layers that unpack to the busybox rootfs', async () => {
    const salt = 'salt-for-layout-check';
    const busybox = fs.readFileSync(DEFAULT_BUSYBOX);
    for (const image of await buildTestImages({ outDir: freshDir(), salt })) {
      const rootfs = await verifyLayout(image);
      const bin = rootfs.get('bin/busybox');
      expect(bin?.type).toBe('file');
      expect(bin?.mode).toBe(0o755);
      expect(bin?.content.equals(busybox)).toBe(true);
      for (const applet of BUSYBOX_APPLETS) {
        expect(rootfs.get(`bin/${applet}`), applet).toMatchObject({ type: 'symlink', linkname: 'busybox' });
      }
      expect(rootfs.get(SALT_FILE)?.content.toString()).toBe(salt);
      expect(rootfs.get(IMAGE_NAME_FILE)?.content.toString()).toBe(`${image.name}\n`);
    }
  });

  it('is reproducible: the same salt gives identical bytes', async () => {
    const a = await buildTestImages({ outDir: freshDir(), salt: 'same' });
    const b = await buildTestImages({ outDir: freshDir(), salt: 'same' });
    expect(b.map(({ file, ...rest }) => rest)).toEqual(a.map(({ file, ...rest }) => rest));
    for (const [i, image] of a.entries()) {
      expect(fs.readFileSync(b[i]!.file).equals(fs.readFileSync(image.file)), image.name).toBe(true);
    }
  });

  it('gives every layer a new diff_id for a different salt, and none without a salt', async () => {
    const plain = await buildTestImages({ outDir: freshDir() });
    const one = await buildTestImages({ outDir: freshDir(), salt: 'one' });
    const two = await buildTestImages({ outDir: freshDir(), salt: 'two' });
    for (const [i, image] of one.entries()) {
      expect(two[i]!.diffId).not.toBe(image.diffId);
      expect(two[i]!.layerDigest).not.toBe(image.layerDigest);
      expect(plain[i]!.diffId).not.toBe(image.diffId);
    }
    const unsalted = await verifyLayout(plain[0]!);
    expect(unsalted.has(SALT_FILE)).toBe(false);
  });

  it('builds only the media types asked for, and rejects unknown ones by name', async () => {
    const images = await buildTestImages({ outDir: freshDir(), media: ['zstd'] });
    expect(images.map((i) => i.name)).toEqual(['docker.io/outrigger/busybox-zstd:latest']);
    await expect(buildTestImages({ outDir: freshDir(), media: ['gzip', 'lz4'] })).rejects.toThrow(
      /unknown layer media kind "lz4"; known: tar, gzip, zstd/,
    );
  });
});

describe('scripts/test-images.ts command line', () => {
  const node = process.execPath;
  const script = path.join(repoRoot, 'scripts/test-images.ts');

  it('prints the built images as JSON', () => {
    const out = freshDir();
    const stdout = execFileSync(node, [script, '--out', out, '--salt', 'cli', '--media', 'tar,gzip'], { encoding: 'utf8' });
    const images = JSON.parse(stdout) as BuiltImage[];
    expect(images.map((i) => path.basename(i.file))).toEqual(['busybox-tar.oci.tar', 'busybox-gzip.oci.tar']);
    for (const i of images) expect(fs.existsSync(i.file)).toBe(true);
  });

  it('fails with a clear message on bad input', () => {
    const noOut = spawnSync(node, [script], { encoding: 'utf8' });
    expect(noOut.status).not.toBe(0);
    expect(noOut.stderr).toContain('--out DIR is required');
    const badMedia = spawnSync(node, [script, '--out', freshDir(), '--media', 'bzip2'], { encoding: 'utf8' });
    expect(badMedia.status).not.toBe(0);
    expect(badMedia.stderr).toContain('unknown layer media kind "bzip2"');
  });
});
