/**
 * A one-layer OCI image archive (layout tar) around a layer file already on disk: the bench
 * suites' layers are hundreds of MB, so unlike scripts/test-images.ts (in-memory rootfs) the blob
 * is moved or copied into the layout, never read into memory.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  ANNOTATION_CONTAINERD_NAME,
  ANNOTATION_REF_NAME,
  MEDIA_TYPE_CONFIG,
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_MANIFEST,
} from '../test-images.ts';

export interface Descriptor {
  readonly digest: string;
  readonly size: number;
}

export function sha256File(file: string): Descriptor {
  const hex = execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0]!;
  return { digest: `sha256:${hex}`, size: fs.statSync(file).size };
}

export interface OneLayerImage {
  /** The compressed layer; `move` renames it into the layout instead of copying it. */
  readonly layerFile: string;
  readonly move?: boolean;
  readonly layerMediaType: string;
  /** Digest of the uncompressed layer, for the config's rootfs.diff_ids. */
  readonly diffId: string;
  /** Fully qualified name, e.g. docker.io/outrigger/bench-x:tag; its tag is the ref name. */
  readonly name: string;
  /** Where the layout is assembled (removed afterwards) and the archive written. */
  readonly workDir: string;
  readonly archive: string;
}

export function writeOneLayerImage(image: OneLayerImage): void {
  const layout = path.join(image.workDir, 'layout');
  const blobs = path.join(layout, 'blobs/sha256');
  fs.rmSync(layout, { recursive: true, force: true });
  fs.mkdirSync(blobs, { recursive: true });
  const layer = sha256File(image.layerFile);
  const layerBlob = path.join(blobs, layer.digest.slice('sha256:'.length));
  if (image.move) fs.renameSync(image.layerFile, layerBlob);
  else fs.copyFileSync(image.layerFile, layerBlob);
  const put = (value: unknown): Descriptor => {
    const bytes = Buffer.from(JSON.stringify(value));
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    fs.writeFileSync(path.join(blobs, digest.slice('sha256:'.length)), bytes);
    return { digest, size: bytes.length };
  };
  const config = put({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [image.diffId] } });
  const manifest = put({
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: { mediaType: MEDIA_TYPE_CONFIG, ...config },
    layers: [{ mediaType: image.layerMediaType, ...layer }],
  });
  const refName = image.name.slice(image.name.lastIndexOf(':') + 1);
  fs.writeFileSync(
    path.join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_INDEX,
      manifests: [
        {
          mediaType: MEDIA_TYPE_MANIFEST,
          ...manifest,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { [ANNOTATION_CONTAINERD_NAME]: image.name, [ANNOTATION_REF_NAME]: refName },
        },
      ],
    }),
  );
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  execFileSync('tar', ['-C', layout, '-cf', image.archive, 'oci-layout', 'index.json', 'blobs']);
  fs.rmSync(layout, { recursive: true, force: true });
}
