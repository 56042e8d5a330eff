/**
 * outrigger-estargz as containerd's tar+gzip [stream_processors] entry, in private containerd 1.6
 * instances with real runc:
 * - an image from our converter (a layer encoder, and `convert-image` on a whole OCI layout)
 *   imports and runs through our processor (which verified every chunk, per its log) and through
 *   containerd's built-in gunzip alike, with the same diff_id;
 * - an image converted by Debian's `ctr-remote image convert --estargz --oci` unpacks and runs
 *   through our processor, verified; and Go's estargz reader (`ctr-remote images get-toc-digest`)
 *   opens a blob of ours;
 * - a zstd:chunked image from `convert-image --zstdchunked` runs under containerd's built-in zstd
 *   and Go's zstd:chunked reader finds our TOC;
 * - an eStargz layer whose TOC disagrees with its data (a diff_id that matches, so containerd
 *   alone accepts it) is refused by our processor with the entry and offset named;
 * - outrigger-zstd as the tar+zstd processor verifies the zstd:chunked image's every chunk
 *   against its TOC and refuses a zstd:chunked layer whose TOC lies.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEstargzBuffer } from '../../processors/estargz/build-buffer.ts';
import { encodeFooter, parseFooter } from '../../processors/estargz/footer.ts';
import { padding } from '../../src/tar/header.ts';
import { bareFileHeader } from '../../processors/estargz/tar-encode.ts';
import { parseToc, serializeToc } from '../../processors/estargz/toc.ts';
import { encodeZstdChunkedFooter, parseZstdChunkedFooter, skippableFrame } from '../../processors/estargz/zstd-chunked-footer.ts';
import { type BuiltImage, buildTestImages, LAYER_ENCODERS, MEDIA_TYPE_LAYER_TAR } from '../../scripts/test-images.ts';
import { DIST_BIN } from '../../scripts/dev-containerd/private-containerd.ts';
import { useContainerd } from './harness.ts';

const GZIP_MEDIA = `${MEDIA_TYPE_LAYER_TAR}+gzip`;
const DOCKER_GZIP_MEDIA = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const salt = `estargz-processor-${process.pid}-${randomBytes(6).toString('hex')}`;
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'estargz-e2e-'));
const layerLog = path.join(workDir, 'outrigger-estargz.log');

/** Our eStargz with one chunk digest in the TOC replaced: valid gzip, consistent diff_id, lying TOC. */
LAYER_ENCODERS['estargz-badtoc'] = {
  kind: 'estargz-badtoc',
  encode: async (tar) => {
    const { blob } = await buildEstargzBuffer(tar, { level: 1, chunkSize: 64 * 1024 });
    const footer = parseFooter(blob.subarray(-51))!;
    const tocTar = zlib.gunzipSync(blob.subarray(footer.tocOffset, blob.length - 51));
    const toc = parseToc(tocTar.subarray(512, 512 + parseInt(tocTar.toString('latin1', 124, 135), 8)));
    const victim = toc.entries.find((e) => e.type === 'chunk')!;
    victim.chunkDigest = `sha256:${'0'.repeat(64)}`;
    const json = serializeToc(toc);
    const member = zlib.gzipSync(Buffer.concat([bareFileHeader('stargz.index.json', json.length), json, Buffer.alloc(padding(json.length) + 1024)]));
    const bad = Buffer.concat([blob.subarray(0, footer.tocOffset), member, encodeFooter(footer.tocOffset)]);
    return { mediaType: GZIP_MEDIA, blob: bad, diffId: `sha256:${createHash('sha256').update(zlib.gunzipSync(bad)).digest('hex')}` };
  },
};

const ZSTD_MEDIA = `${MEDIA_TYPE_LAYER_TAR}+zstd`;

/** Our zstd:chunked with one chunk digest in the TOC replaced: valid zstd, consistent diff_id, lying TOC. */
LAYER_ENCODERS['zstdchunked-badtoc'] = {
  kind: 'zstdchunked-badtoc',
  encode: async (tar) => {
    // Prioritizing a file puts .prefetch.landmark in the stream: a diff_id of its own, so
    // containerd cannot skip the unpack because the convert-image layer's snapshot exists.
    const { blob } = await buildEstargzBuffer(tar, { compression: 'zstdchunked', chunkSize: 64 * 1024, prioritizedFiles: ['etc/outrigger-salt'] });
    const footer = parseZstdChunkedFooter(blob.subarray(-40));
    const toc = parseToc(zlib.zstdDecompressSync(blob.subarray(footer.toc.offset, footer.toc.offset + footer.toc.length)));
    toc.entries.find((e) => e.type === 'chunk')!.chunkDigest = `sha256:${'0'.repeat(64)}`;
    const json = serializeToc(toc);
    const compressed = zlib.zstdCompressSync(json);
    const data = blob.subarray(0, footer.toc.offset - 8);
    const position = { offset: data.length + 8, length: compressed.length, uncompressedLength: json.length };
    const bad = Buffer.concat([data, skippableFrame(compressed), encodeZstdChunkedFooter({ size: 40, toc: position, manifestType: 1 })]);
    return { mediaType: ZSTD_MEDIA, blob: bad, diffId: `sha256:${createHash('sha256').update(zlib.zstdDecompressSync(bad)).digest('hex')}` };
  },
};

let images: BuiltImage[] = [];
/** busybox-gzip converted by `outrigger estargz convert-image` (the built binary), and its new diff_id. */
const convertedFile = path.join(workDir, 'busybox-gzip-converted.oci.tar');
let convertedDiffId = '';
/** The same with `--zstdchunked` (stargz-snapshotter's zstd:chunked), under its own name. */
const convertedZstdFile = path.join(workDir, 'busybox-zstdchunked.oci.tar');
let convertedZstdDiffId = '';
let convertedZstdLayer = { digest: '', tocDigest: '' };

function image(kind: string): BuiltImage {
  const found = images.find((i) => i.name.endsWith(`busybox-${kind}:latest`));
  if (!found) throw new Error(`no ${kind} test image was built`);
  return found;
}

beforeAll(async () => {
  images = await buildTestImages({ outDir: workDir, salt, media: ['estargz', 'gzip', 'estargz-badtoc', 'zstdchunked-badtoc'] });
  const convert = await execa(path.join(DIST_BIN, 'outrigger-estargz'), ['convert-image', '--level', '6', image('gzip').file, convertedFile]);
  const summary = JSON.parse(convert.stdout) as { layers: Array<{ diffId: string }> };
  convertedDiffId = summary.layers[0]!.diffId;
  const zstd = await execa(path.join(DIST_BIN, 'outrigger-estargz'), ['convert-image', '--zstdchunked', image('estargz').file, convertedZstdFile]);
  const zstdLayer = (JSON.parse(zstd.stdout) as { layers: Array<{ diffId: string; to: string; tocDigest: string }> }).layers[0]!;
  convertedZstdDiffId = zstdLayer.diffId;
  convertedZstdLayer = { digest: zstdLayer.to, tocDigest: zstdLayer.tocDigest };
});
afterAll(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
  delete LAYER_ENCODERS['estargz-badtoc'];
  delete LAYER_ENCODERS['zstdchunked-badtoc'];
});

function logLines(): string[] {
  return fs.existsSync(layerLog) ? fs.readFileSync(layerLog, 'utf8').trim().split('\n').filter(Boolean) : [];
}

const busyboxSum = createHash('md5').update(fs.readFileSync('/bin/busybox')).digest('hex');
const CHECK_ROOTFS = ['sh', '-c', 'cat /etc/outrigger-salt; echo; md5sum /bin/busybox; ls /stargz.index.json /.no.prefetch.landmark'];
// busybox ls sorts its arguments.
const EXPECTED_OUTPUT = `${salt}\n${busyboxSum}  /bin/busybox\n/.no.prefetch.landmark\n/stargz.index.json\n`;

describe('outrigger-estargz as the tar+gzip stream processor', () => {
  const ctd = useContainerd({
    streamProcessors: {
      'io.containerd.outrigger.estargz.v1.tar.gzip': {
        accepts: [GZIP_MEDIA, DOCKER_GZIP_MEDIA],
        returns: MEDIA_TYPE_LAYER_TAR,
        path: 'outrigger-estargz',
        args: ['unpack', '--log-file', layerLog],
      },
    },
  });

  it('imports and runs an image from our converter, every chunk verified, with the diff_id containerd expects', async () => {
    const img = image('estargz');
    const before = logLines().length;
    await ctd().importImage(img.file);
    const lines = logLines().slice(before);
    expect(lines, lines.join('\n')).toHaveLength(1);
    // Every chunk's own digest was compared (none left to the file digest): busybox alone is
    // 4 MiB chunks at the default size, so at least the landmark, busybox and the two files.
    expect(lines[0]).toMatch(/ result=ok format=estargz .* toc=sha256:[0-9a-f]{64} chunks=([4-9]|\d\d+) covered=0 /);
    const run = await ctd().run({ image: img.name, args: CHECK_ROOTFS });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe(EXPECTED_OUTPUT);
    // One-layer image: the snapshot's chain id is the diff_id (= sha256 of our output).
    expect((await ctd().ctr(['snapshots', 'ls'], { check: true })).stdout).toContain(img.diffId);
  });

  it("Go's estargz reader (ctr-remote images get-toc-digest) opens our blob and finds the TOC digest we annotated", async () => {
    const img = image('estargz');
    const r = await execa('ctr-remote', ['--address', ctd().address, '--namespace', ctd().namespace, 'images', 'get-toc-digest', img.layerDigest], { reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    const manifest = await execa('tar', ['-xOf', img.file, `blobs/sha256/${img.manifestDigest.slice(7)}`]);
    const annotated = JSON.parse(manifest.stdout).layers[0].annotations as Record<string, string>;
    expect(r.stdout.trim()).toBe(annotated['containerd.io/snapshot/stargz/toc.digest']);
    const dump = await execa('ctr-remote', ['--address', ctd().address, '--namespace', ctd().namespace, 'images', 'get-toc-digest', '--dump-toc', img.layerDigest]);
    const toc = JSON.parse(dump.stdout) as { version: number; entries: Array<{ name: string; type: string }> };
    expect(toc.version).toBe(1);
    expect(toc.entries[0]).toMatchObject({ name: '.no.prefetch.landmark', type: 'reg' });
    expect(toc.entries.some((e) => e.name === 'bin/busybox' && e.type === 'reg')).toBe(true);
  });

  it('passes an ordinary gzip layer through', async () => {
    const img = image('gzip');
    const before = logLines().length;
    await ctd().importImage(img.file);
    expect(logLines().slice(before).join('\n')).toMatch(/ result=ok format=gzip /);
    const run = await ctd().run({ image: img.name, args: ['cat', '/etc/outrigger-salt'] });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe(salt);
  });

  it('refuses an eStargz layer whose TOC lies about a chunk, naming the entry and offset', async () => {
    const img = image('estargz-badtoc');
    const before = logLines().length;
    const r = await ctd().ctr(['images', 'import', img.file]);
    expect(r.exitCode).not.toBe(0);
    const lines = logLines().slice(before);
    expect(lines.join('\n')).toMatch(/result=error offset=\d+ error=.*bin\/busybox.* chunk at file offset \d+ \(TOC offset \d+\): chunk digest mismatch/);
    expect((await ctd().ctr(['snapshots', 'ls'], { check: true })).stdout).not.toContain(img.diffId);
  });

  it('unpacks and runs an image converted by ctr-remote image convert --estargz --oci, verified', async () => {
    const src = image('gzip');
    await ctd().importImage(src.file);
    const dst = `${src.name.replace(/:latest$/, '')}-ctr-remote-esgz:latest`;
    const convert = await execa('ctr-remote', ['--address', ctd().address, '--namespace', ctd().namespace, 'images', 'convert', '--estargz', '--oci', '--estargz-chunk-size', '65536', src.name, dst], { reject: false });
    expect(convert.exitCode, `${convert.stderr}`).toBe(0);
    const before = logLines().length;
    // ctr run unpacks the converted image (new diff_id, so a new snapshot) through the processor.
    const run = await ctd().run({ image: dst, args: CHECK_ROOTFS });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe(EXPECTED_OUTPUT);
    const lines = logLines().slice(before);
    expect(lines, lines.join('\n')).toHaveLength(1);
    // 64 KiB chunks: busybox alone gives many; each one's digest was compared.
    expect(lines[0]).toMatch(/ result=ok format=estargz .* chunks=\d\d+ covered=0 /);
    // The manifest carries the TOC digest our processor computed.
    const toc = /toc=(sha256:[0-9a-f]{64})/.exec(lines[0]!)![1]!;
    const manifest = await ctd().ctr(['content', 'get', (await manifestDigest(dst))], { check: true });
    expect(manifest.stdout).toContain(`"containerd.io/snapshot/stargz/toc.digest":"${toc}"`);
  });

  it('imports and runs an image converted by outrigger estargz convert-image, verified', async () => {
    const before = logLines().length;
    await ctd().importImage(convertedFile);
    const lines = logLines().slice(before);
    expect(lines, lines.join('\n')).toHaveLength(1);
    expect(lines[0]).toMatch(/ result=ok format=estargz .* covered=0 /);
    const run = await ctd().run({ image: image('gzip').name, args: CHECK_ROOTFS });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe(EXPECTED_OUTPUT);
    expect((await ctd().ctr(['snapshots', 'ls'], { check: true })).stdout).toContain(convertedDiffId);
  });

  async function manifestDigest(ref: string): Promise<string> {
    const list = await ctd().ctr(['images', 'ls'], { check: true });
    const line = list.stdout.split('\n').find((l) => l.startsWith(`${ref} `));
    if (!line) throw new Error(`${ref} not listed:\n${list.stdout}`);
    return /sha256:[0-9a-f]{64}/.exec(line)![0];
  }
});

describe('containerd built-in gunzip (no stream processor)', () => {
  const ctd = useContainerd({});

  it('imports and runs the same eStargz image, same diff_id', async () => {
    const img = image('estargz');
    await ctd().importImage(img.file);
    const run = await ctd().run({ image: img.name, args: CHECK_ROOTFS });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe(EXPECTED_OUTPUT);
    expect((await ctd().ctr(['snapshots', 'ls'], { check: true })).stdout).toContain(img.diffId);
  });

  it('imports and runs the convert-image output, same diff_id', async () => {
    await ctd().importImage(convertedFile);
    const run = await ctd().run({ image: image('gzip').name, args: CHECK_ROOTFS });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe(EXPECTED_OUTPUT);
    expect((await ctd().ctr(['snapshots', 'ls'], { check: true })).stdout).toContain(convertedDiffId);
  });

  it('imports and runs a zstd:chunked image from convert-image --zstdchunked with its built-in zstd', async () => {
    // Converted from the eStargz image: the old landmark and TOC are dropped and made anew.
    await ctd().importImage(convertedZstdFile);
    const run = await ctd().run({ image: image('estargz').name, args: ['sh', '-c', 'cat /etc/outrigger-salt; echo; ls /.no.prefetch.landmark; test ! -e /stargz.index.json && echo no-toc-entry'] });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe(`${salt}\n/.no.prefetch.landmark\nno-toc-entry\n`);
    expect((await ctd().ctr(['snapshots', 'ls'], { check: true })).stdout).toContain(convertedZstdDiffId);
    // Go's zstd:chunked reader finds the TOC through our footer.
    const toc = await execa('ctr-remote', ['--address', ctd().address, '--namespace', ctd().namespace, 'images', 'get-toc-digest', '--zstdchunked', convertedZstdLayer.digest], { reject: false });
    expect(toc.exitCode, toc.stderr).toBe(0);
    expect(toc.stdout.trim()).toBe(convertedZstdLayer.tocDigest);
  });

  it('accepts the lying-TOC layer (its diff_id matches): only our processor catches it', async () => {
    const img = image('estargz-badtoc');
    await ctd().importImage(img.file);
    expect((await ctd().ctr(['snapshots', 'ls'], { check: true })).stdout).toContain(img.diffId);
  });
});

describe('outrigger-zstd as the tar+zstd stream processor: zstd:chunked verified', () => {
  const zstdLog = path.join(workDir, 'outrigger-zstd.log');
  const ctd = useContainerd({
    streamProcessors: {
      'io.containerd.outrigger.zstd.v1.tar.zstd': {
        accepts: [ZSTD_MEDIA],
        returns: MEDIA_TYPE_LAYER_TAR,
        path: 'outrigger-zstd',
        args: ['--log-file', zstdLog],
      },
    },
  });
  const zstdLines = (): string[] => (fs.existsSync(zstdLog) ? fs.readFileSync(zstdLog, 'utf8').trim().split('\n').filter(Boolean) : []);

  it('imports and runs the convert-image --zstdchunked image, every chunk checked against its TOC', async () => {
    const before = zstdLines().length;
    await ctd().importImage(convertedZstdFile);
    const lines = zstdLines().slice(before);
    expect(lines, lines.join('\n')).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(` result=ok format=zstd .* chunked=footer40 toc=${convertedZstdLayer.tocDigest} chunks=\\d+ covered=0 `));
    const run = await ctd().run({ image: image('estargz').name, args: ['sh', '-c', 'cat /etc/outrigger-salt'] });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toBe(salt);
    expect((await ctd().ctr(['snapshots', 'ls'], { check: true })).stdout).toContain(convertedZstdDiffId);
  });

  it('refuses a zstd:chunked layer whose TOC lies about a chunk (containerd alone would accept it)', async () => {
    const img = image('zstdchunked-badtoc');
    const r = await ctd().ctr(['images', 'import', img.file]);
    expect(r.exitCode).not.toBe(0);
    expect(`${r.stdout}\n${r.stderr}`).toMatch(/zstd:chunked verification failed: TOC entry \d+ .* chunk digest mismatch/);
    expect((await ctd().ctr(['snapshots', 'ls'], { check: true })).stdout).not.toContain(img.diffId);
  });
});
