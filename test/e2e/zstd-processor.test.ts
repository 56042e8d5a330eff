/**
 * outrigger-zstd as containerd's [stream_processors] entry for tar+zstd and tar+gzip, in a
 * private containerd 1.6 with real runc: salted images import and run; our processor (not
 * containerd's built-in decompressor) did the decoding, as its per-layer log shows; containerd's
 * diff_id check passed, i.e. the unpacked stream equals the source tar byte for byte; and a
 * corrupted layer fails the import with our message naming the offset.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltImage, buildRootfsTar, buildTestImages, type LayerEncoder, MEDIA_TYPE_LAYER_TAR } from '../../scripts/test-images.ts';
import { useContainerd } from './harness.ts';

const ZSTD_MEDIA = `${MEDIA_TYPE_LAYER_TAR}+zstd`;
const GZIP_MEDIA = `${MEDIA_TYPE_LAYER_TAR}+gzip`;
const salt = `zstd-processor-${process.pid}-${randomBytes(6).toString('hex')}`;
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zstd-e2e-'));
const layerLog = path.join(workDir, 'outrigger-zstd.log');

/** Flips one byte in the middle of a compressed layer; the image still carries the blob's true digest. */
function corrupt(blob: Buffer): Buffer {
  const bad = Buffer.from(blob);
  const at = Math.floor(bad.length / 2);
  bad[at] = bad[at]! ^ 0x5a;
  return bad;
}

// Corrupted variants for this file only: a valid digest over invalid data, so containerd's content
// store takes the blob and the failure surfaces only when the processor decodes it.
const corruptEncoders: Record<string, LayerEncoder> = {};
corruptEncoders['zstd-corrupt'] = {
  kind: 'zstd-corrupt',
  encode: async (tar) => ({
    mediaType: ZSTD_MEDIA,
    blob: corrupt(zlib.zstdCompressSync(tar, { params: { [zlib.constants.ZSTD_c_checksumFlag]: 1 } })),
  }),
};
corruptEncoders['gzip-corrupt'] = {
  kind: 'gzip-corrupt',
  encode: async (tar) => ({ mediaType: GZIP_MEDIA, blob: corrupt(zlib.gzipSync(tar)) }),
};

let images: BuiltImage[] = [];

function image(kind: string): BuiltImage {
  const found = images.find((i) => i.name.endsWith(`busybox-${kind}:latest`));
  if (!found) throw new Error(`no ${kind} test image was built`);
  return found;
}

beforeAll(async () => {
  images = await buildTestImages({ outDir: workDir, salt, media: ['zstd', 'gzip', 'zstd-corrupt', 'gzip-corrupt'], extraEncoders: corruptEncoders });
});
afterAll(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
});

const processor = (media: string) => ({
  accepts: [media],
  returns: MEDIA_TYPE_LAYER_TAR,
  // A bare name: containerd finds it on its PATH, where the harness puts dist/bin first.
  path: 'outrigger-zstd',
  args: ['--log-file', layerLog],
});

const ctd = useContainerd({
  streamProcessors: {
    'io.containerd.outrigger.zstd.v1.tar.zstd': processor(ZSTD_MEDIA),
    'io.containerd.outrigger.zstd.v1.tar.gzip': processor(GZIP_MEDIA),
  },
});

function logLines(): string[] {
  return fs.existsSync(layerLog) ? fs.readFileSync(layerLog, 'utf8').trim().split('\n').filter(Boolean) : [];
}

function layerBlobSize(img: BuiltImage): number {
  // The OCI layout tar holds the blob under its digest; its size is what the processor read.
  const listing = fs.readFileSync(img.file);
  const name = `blobs/sha256/${img.layerDigest.slice('sha256:'.length)}`;
  const at = listing.indexOf(Buffer.from(name));
  const sizeField = listing.subarray(at + 124, at + 136).toString().replace(/\0.*$/, '').trim();
  return Number.parseInt(sizeField, 8);
}

describe('outrigger-zstd in [stream_processors]', () => {
  for (const kind of ['zstd', 'gzip'] as const) {
    it(`imports and runs a salted tar+${kind} image, decoded by our processor, with the diff_id containerd expects`, async () => {
      const img = image(kind);
      const before = logLines().length;
      await ctd().importImage(img.file);

      // Our processor ran for this layer: one log line with the layer's media type and sizes.
      const lines = logLines().slice(before);
      expect(lines, lines.join('\n')).toHaveLength(1);
      const rootfs = await buildRootfsTar({ imageName: img.name, salt });
      expect(`sha256:${createHash('sha256').update(rootfs).digest('hex')}`).toBe(img.diffId);
      expect(lines[0]).toMatch(
        new RegExp(`media=${img.mediaType.replaceAll('.', '\\.').replace('+', '\\+')} result=ok format=${kind} in=${layerBlobSize(img)} out=${rootfs.length} `),
      );

      // containerd unpacked it (its diff_id check compares the digest of our output with the
      // config's diff_id) and the snapshot serves the salted rootfs to a real container.
      const busyboxSum = createHash('md5').update(fs.readFileSync('/bin/busybox')).digest('hex');
      const run = await ctd().run({ image: img.name, args: ['sh', '-c', 'cat /etc/outrigger-salt; echo; md5sum /bin/busybox'] });
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.stdout).toBe(`${salt}\n${busyboxSum}  /bin/busybox\n`);
    });
  }

  for (const kind of ['zstd', 'gzip'] as const) {
    it(`a corrupted tar+${kind} layer fails the import with our message and offset`, async () => {
      const img = image(`${kind}-corrupt`);
      const before = logLines().length;
      const r = await ctd().ctr(['images', 'import', img.file]);
      expect(r.exitCode).not.toBe(0);
      const output = `${r.stdout}\n${r.stderr}`;
      expect(output).toMatch(new RegExp(`zstd stream processor: layer ${img.mediaType.replaceAll('.', '\\.').replace('+', '\\+')}: ${kind}: .*bytes? \\d+`));
      const lines = logLines().slice(before);
      expect(lines.some((l) => / result=error offset=\d+ /.test(l)), lines.join('\n')).toBe(true);
      // No snapshot was committed for the broken layer (a one-layer image's chain id is its diff_id).
      const snapshots = await ctd().ctr(['snapshots', 'ls'], { check: true });
      expect(snapshots.stdout).not.toContain(img.diffId);
    });
  }
});
