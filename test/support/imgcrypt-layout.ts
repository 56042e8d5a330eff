/**
 * Small OCI image-layout directories (the form `skopeo copy oci:DIR:latest` reads and writes) for
 * the imgcrypt tests: build one from layer blobs, read its manifests and layers, and rewrite a
 * manifest in place with digests, sizes and the index kept consistent.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import tarStream from 'tar-stream';

export interface LayoutDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string };
}

export interface LayoutManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: LayoutDescriptor;
  layers: LayoutDescriptor[];
  annotations?: Record<string, string>;
}

export interface LayoutIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: LayoutDescriptor[];
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function blobFile(dir: string, digest: string): string {
  return path.join(dir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
}

export function putBlob(dir: string, bytes: Uint8Array): { digest: string; size: number } {
  const digest = sha256(bytes);
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  fs.writeFileSync(blobFile(dir, digest), bytes);
  return { digest, size: bytes.length };
}

export function readBlob(dir: string, digest: string): Buffer {
  return fs.readFileSync(blobFile(dir, digest));
}

/** A one-file tar (deterministic), to be used as a layer's uncompressed content. */
export async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const [name, content] of Object.entries(files)) {
    pack.entry({ name, mtime: new Date(1_700_000_000_000), mode: 0o644, uid: 0, gid: 0 }, content);
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export interface LayerSpec {
  /** `tar`, `gzip` or `zstd`: how the layer's tar is stored. */
  readonly compression: 'tar' | 'gzip' | 'zstd';
  readonly files: Record<string, string>;
}

const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar';

async function encodeLayer(spec: LayerSpec): Promise<{ mediaType: string; blob: Buffer; diffId: string }> {
  const tar = await tarOf(spec.files);
  const diffId = sha256(tar);
  if (spec.compression === 'gzip') return { mediaType: `${LAYER_TYPE}+gzip`, blob: zlib.gzipSync(tar), diffId };
  if (spec.compression === 'zstd') return { mediaType: `${LAYER_TYPE}+zstd`, blob: zlib.zstdCompressSync(tar), diffId };
  return { mediaType: LAYER_TYPE, blob: tar, diffId };
}

export interface PlatformImage {
  readonly platform?: { architecture: string; os: string };
  readonly layers: readonly LayerSpec[];
}

/**
 * Writes an OCI layout with ref name `latest`: one manifest when given one image, else an image
 * index (nested under the top-level index) with one manifest per platform, as registries serve it.
 */
export async function writeLayout(dir: string, images: readonly PlatformImage[]): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const manifests: LayoutDescriptor[] = [];
  for (const image of images) {
    const layers: LayoutDescriptor[] = [];
    const diffIds: string[] = [];
    for (const spec of image.layers) {
      const layer = await encodeLayer(spec);
      layers.push({ mediaType: layer.mediaType, ...putBlob(dir, layer.blob) });
      diffIds.push(layer.diffId);
    }
    const platform = image.platform ?? { architecture: 'amd64', os: 'linux' };
    const config = putBlob(dir, Buffer.from(JSON.stringify({ ...platform, config: {}, rootfs: { type: 'layers', diff_ids: diffIds } })));
    const manifest: LayoutManifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers,
    };
    const stored = putBlob(dir, Buffer.from(JSON.stringify(manifest)));
    manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...stored, ...(image.platform ? { platform } : {}) });
  }
  const ref = { 'org.opencontainers.image.ref.name': 'latest' };
  let top: LayoutDescriptor;
  if (manifests.length === 1) {
    top = { ...manifests[0]!, annotations: ref };
  } else {
    const index: LayoutIndex = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests };
    top = { mediaType: 'application/vnd.oci.image.index.v1+json', ...putBlob(dir, Buffer.from(JSON.stringify(index))), annotations: ref };
  }
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [top] }));
}

export interface FoundManifest {
  readonly digest: string;
  readonly manifest: LayoutManifest;
  readonly platform?: LayoutDescriptor['platform'];
}

/** Every image manifest reachable from index.json (through nested indexes). */
export function readManifests(dir: string): FoundManifest[] {
  const found: FoundManifest[] = [];
  const visit = (descriptors: readonly LayoutDescriptor[]): void => {
    for (const d of descriptors) {
      const json = JSON.parse(readBlob(dir, d.digest).toString('utf8')) as LayoutManifest & LayoutIndex;
      if (Array.isArray(json.manifests)) visit(json.manifests);
      else found.push({ digest: d.digest, manifest: json, ...(d.platform ? { platform: d.platform } : {}) });
    }
  };
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as LayoutIndex;
  visit(index.manifests);
  return found;
}

/** Replaces the single top-level manifest (no nested index) with `edit`'s result, fixing index.json. */
export function rewriteOnlyManifest(dir: string, edit: (manifest: LayoutManifest) => LayoutManifest): void {
  const indexFile = path.join(dir, 'index.json');
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as LayoutIndex;
  const top = index.manifests[0];
  if (!top || index.manifests.length !== 1) throw new Error(`${dir}: expected one manifest in index.json`);
  const manifest = JSON.parse(readBlob(dir, top.digest).toString('utf8')) as LayoutManifest;
  const stored = putBlob(dir, Buffer.from(JSON.stringify(edit(manifest))));
  index.manifests[0] = { ...top, ...stored };
  fs.writeFileSync(indexFile, JSON.stringify(index));
}
