/**
 * Builds the small OCI images the e2e tests and the demo run: a busybox-static rootfs, one image per
 * layer media type, each written as an OCI-layout tar that `ctr images import` accepts.
 *
 *   node scripts/test-images.ts --out DIR [--salt STRING] [--media tar,gzip,zstd]
 *
 * Output is reproducible: the same busybox binary, salt and media list give the same bytes (fixed
 * mtimes, uid/gid 0, sorted entries, deterministic compressors). A salt adds /etc/outrigger-salt so
 * the layer's diff_id is new to any snapshotter: containerd skips the unpack, and with it any stream
 * processor, when a snapshot for the chain id already exists.
 *
 * Adding a layer media type (eStargz, encrypted) means adding one entry to LAYER_ENCODERS.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import tarStream from 'tar-stream';

export const MEDIA_TYPE_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_TYPE_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';

/** containerd's import names the image after this annotation before anything else. */
export const ANNOTATION_CONTAINERD_NAME = 'io.containerd.image.name';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

export const SALT_FILE = 'etc/outrigger-salt';
/** Names the image inside its own rootfs, so the three media types never share a diff_id. */
export const IMAGE_NAME_FILE = 'etc/outrigger-image';

/** Applets the tests call by name; each becomes a symlink to busybox in /bin. */
export const BUSYBOX_APPLETS = [
  'sh', 'echo', 'cat', 'sleep', 'ls', 'true', 'false', 'env', 'id', 'wc', 'head', 'dd', 'yes', 'printf', 'seq',
  'sync', 'stat', 'mount',
] as const;

export const DEFAULT_BUSYBOX = '/bin/busybox';
export const DEFAULT_REPOSITORY_PREFIX = 'docker.io/outrigger/busybox';

/** Any fixed instant works; 2023-11-14T22:13:20Z keeps tools that dislike mtime 0 quiet. */
const FIXED_MTIME = new Date(1_700_000_000_000);

export interface EncodedLayer {
  mediaType: string;
  blob: Buffer;
  /** Descriptor annotations the media type needs (eStargz TOC digest, encryption keys, ...). */
  annotations?: Record<string, string>;
  /** The decoded stream's digest when it is not the rootfs tar's (eStargz adds entries). */
  diffId?: string;
}

export interface LayerEncoder {
  /** Short name used on the command line and in the image name (`busybox-<kind>`). */
  kind: string;
  encode(rootfsTar: Buffer): Promise<EncodedLayer>;
}

export const LAYER_ENCODERS: Record<string, LayerEncoder> = {
  tar: {
    kind: 'tar',
    encode: async (rootfsTar) => ({ mediaType: MEDIA_TYPE_LAYER_TAR, blob: rootfsTar }),
  },
  gzip: {
    kind: 'gzip',
    encode: async (rootfsTar) => ({
      mediaType: `${MEDIA_TYPE_LAYER_TAR}+gzip`,
      // node:zlib writes mtime 0 and a fixed OS byte in the gzip header, so this is deterministic.
      blob: zlib.gzipSync(rootfsTar, { level: 6 }),
    }),
  },
  zstd: {
    kind: 'zstd',
    encode: async (rootfsTar) => ({
      mediaType: `${MEDIA_TYPE_LAYER_TAR}+zstd`,
      blob: zlib.zstdCompressSync(rootfsTar, {
        params: {
          [zlib.constants.ZSTD_c_compressionLevel]: 3,
          [zlib.constants.ZSTD_c_checksumFlag]: 1,
        },
      }),
    }),
  },
  estargz: {
    kind: 'estargz',
    encode: async (rootfsTar) => {
      const { buildEstargzBuffer } = await import('../processors/estargz/build-buffer.ts');
      const { blob, report } = await buildEstargzBuffer(rootfsTar, { level: 6 });
      return { mediaType: report.mediaType, blob, annotations: report.annotations, diffId: report.diffId };
    },
  },
};

export const DEFAULT_MEDIA: readonly string[] = ['tar', 'gzip', 'zstd'];

export interface BuildOptions {
  outDir: string;
  salt?: string;
  /** Keys of LAYER_ENCODERS or of extraEncoders; default tar, gzip, zstd. */
  media?: readonly string[];
  /** Encoders known to this call only, e.g. a test's deliberately corrupted layers. */
  extraEncoders?: Readonly<Record<string, LayerEncoder>>;
  /** The static busybox binary to ship; default /bin/busybox from Debian's busybox-static. */
  busybox?: string;
  /** Image names are `<prefix>-<kind>:latest`; keep them fully qualified so CRI finds them. */
  repositoryPrefix?: string;
  /** The image config's Cmd; default ["/bin/sh"]. A CRI sandbox image needs one that keeps running. */
  cmd?: readonly string[];
}

export interface BuiltImage {
  /** Fully qualified reference, e.g. docker.io/outrigger/busybox-gzip:latest. */
  name: string;
  /** The OCI-layout tar to hand to `ctr images import`. */
  file: string;
  /** Layer media type. */
  mediaType: string;
  layerDigest: string;
  diffId: string;
  configDigest: string;
  manifestDigest: string;
}

interface Blob {
  digest: string;
  bytes: Buffer;
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function blobOf(bytes: Buffer): Blob {
  return { digest: sha256(bytes), bytes };
}

function jsonBlob(value: unknown): Blob {
  return blobOf(Buffer.from(JSON.stringify(value)));
}

type TarEntry =
  | { name: string; type: 'directory'; mode: number }
  | { name: string; type: 'file'; mode: number; content: Buffer }
  | { name: string; type: 'symlink'; linkname: string };

/** Writes entries in the order given with fixed ownership and times; the caller sorts. */
async function packTar(entries: readonly TarEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const entry of entries) {
    const common = { name: entry.name, mtime: FIXED_MTIME, uid: 0, gid: 0, uname: '', gname: '' };
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      switch (entry.type) {
        case 'directory':
          pack.entry({ ...common, type: 'directory', mode: entry.mode }, done);
          break;
        case 'file':
          pack.entry({ ...common, type: 'file', mode: entry.mode, size: entry.content.length }, entry.content, done);
          break;
        case 'symlink':
          pack.entry({ ...common, type: 'symlink', mode: 0o777, linkname: entry.linkname }, done);
          break;
      }
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function rootfsEntries(busybox: Buffer, imageName: string, salt: string | undefined): TarEntry[] {
  const entries: TarEntry[] = [
    { name: 'bin/', type: 'directory', mode: 0o755 },
    { name: 'bin/busybox', type: 'file', mode: 0o755, content: busybox },
    ...BUSYBOX_APPLETS.map((applet): TarEntry => ({ name: `bin/${applet}`, type: 'symlink', linkname: 'busybox' })),
    // Mount points runc would otherwise have to create inside the rootfs.
    { name: 'dev/', type: 'directory', mode: 0o755 },
    { name: 'proc/', type: 'directory', mode: 0o555 },
    { name: 'sys/', type: 'directory', mode: 0o555 },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'etc/', type: 'directory', mode: 0o755 },
    { name: IMAGE_NAME_FILE, type: 'file', mode: 0o644, content: Buffer.from(`${imageName}\n`) },
  ];
  if (salt !== undefined) {
    entries.push({ name: SALT_FILE, type: 'file', mode: 0o644, content: Buffer.from(salt) });
  }
  return entries.sort(byName);
}

/** Builds the uncompressed rootfs layer for one image; exported for tests and later encoders. */
export async function buildRootfsTar(opts: { busybox?: string; imageName: string; salt?: string }): Promise<Buffer> {
  const busyboxPath = opts.busybox ?? DEFAULT_BUSYBOX;
  let busybox: Buffer;
  try {
    busybox = fs.readFileSync(busyboxPath);
  } catch (err) {
    throw new Error(`cannot read the busybox binary ${busyboxPath} (install Debian's busybox-static): ${(err as Error).message}`);
  }
  return packTar(rootfsEntries(busybox, opts.imageName, opts.salt));
}

function imageConfig(diffId: string, cmd: readonly string[]): unknown {
  return {
    architecture: 'amd64',
    os: 'linux',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: cmd,
      WorkingDir: '/',
    },
    rootfs: { type: 'layers', diff_ids: [diffId] },
  };
}

async function buildOne(encoder: LayerEncoder, opts: BuildOptions): Promise<BuiltImage> {
  const prefix = opts.repositoryPrefix ?? DEFAULT_REPOSITORY_PREFIX;
  const name = `${prefix}-${encoder.kind}:latest`;
  const rootfs = await buildRootfsTar({ busybox: opts.busybox, imageName: name, salt: opts.salt });
  const encoded = await encoder.encode(rootfs);
  const diffId = encoded.diffId ?? sha256(rootfs);
  const layer = blobOf(encoded.blob);
  const config = jsonBlob(imageConfig(diffId, opts.cmd ?? ['/bin/sh']));
  const manifest = jsonBlob({
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: { mediaType: MEDIA_TYPE_CONFIG, digest: config.digest, size: config.bytes.length },
    layers: [
      {
        mediaType: encoded.mediaType,
        digest: layer.digest,
        size: layer.bytes.length,
        ...(encoded.annotations ? { annotations: encoded.annotations } : {}),
      },
    ],
  });
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_INDEX,
      manifests: [
        {
          mediaType: MEDIA_TYPE_MANIFEST,
          digest: manifest.digest,
          size: manifest.bytes.length,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { [ANNOTATION_CONTAINERD_NAME]: name, [ANNOTATION_REF_NAME]: 'latest' },
        },
      ],
    }),
  );

  const blobs = [layer, config, manifest];
  const entries: TarEntry[] = [
    { name: 'blobs/', type: 'directory', mode: 0o755 },
    { name: 'blobs/sha256/', type: 'directory', mode: 0o755 },
    ...blobs.map(
      (b): TarEntry => ({ name: `blobs/sha256/${b.digest.slice('sha256:'.length)}`, type: 'file', mode: 0o644, content: b.bytes }),
    ),
    { name: 'index.json', type: 'file', mode: 0o644, content: index },
    { name: 'oci-layout', type: 'file', mode: 0o644, content: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
  ];
  const file = path.join(opts.outDir, `busybox-${encoder.kind}.oci.tar`);
  fs.writeFileSync(file, await packTar(entries.sort(byName)));
  return {
    name,
    file,
    mediaType: encoded.mediaType,
    layerDigest: layer.digest,
    diffId,
    configDigest: config.digest,
    manifestDigest: manifest.digest,
  };
}

export async function buildTestImages(opts: BuildOptions): Promise<BuiltImage[]> {
  const media = opts.media ?? DEFAULT_MEDIA;
  const encoders = media.map((kind) => {
    const encoder = opts.extraEncoders?.[kind] ?? LAYER_ENCODERS[kind];
    if (!encoder) {
      const known = [...Object.keys(LAYER_ENCODERS), ...Object.keys(opts.extraEncoders ?? {})];
      throw new Error(`unknown layer media kind "${kind}"; known: ${known.join(', ')}`);
    }
    return encoder;
  });
  fs.mkdirSync(opts.outDir, { recursive: true });
  const built: BuiltImage[] = [];
  for (const encoder of encoders) built.push(await buildOne(encoder, opts));
  return built;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      salt: { type: 'string' },
      media: { type: 'string' },
      busybox: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: node scripts/test-images.ts --out DIR [--salt STRING] [--media tar,gzip,zstd] [--busybox PATH]\n',
    );
    return;
  }
  if (!values.out) throw new Error('--out DIR is required');
  const media = values.media?.split(',').map((m) => m.trim()).filter((m) => m !== '');
  const images = await buildTestImages({ outDir: values.out, salt: values.salt, media, busybox: values.busybox });
  process.stdout.write(`${JSON.stringify(images, null, 2)}\n`);
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`test-images: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
