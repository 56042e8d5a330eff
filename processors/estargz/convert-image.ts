/**
 * `outrigger estargz convert-image SRC DST`: converts every tar / tar+gzip layer of an OCI image
 * layout (directory or tar) to eStargz, as `ctr-remote image convert --estargz --oci` does in a
 * content store (../shared/reference/estargz.md §5, §8): layer annotations
 * `containerd.io/snapshot/stargz/toc.digest` and `io.containers.estargz.uncompressed-size`, the
 * config's diff_ids rewritten (they change: eStargz adds the landmark and TOC entries), Docker
 * media types turned into OCI ones (Docker manifests cannot carry layer annotations), and new
 * config, manifest and index blobs. Other layers (zstd, encrypted) are kept as they are.
 */
import type { Descriptor } from '../../src/oci/descriptor.ts';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import { ANNOTATION_TOC_DIGEST, ANNOTATION_UNCOMPRESSED_SIZE, buildEstargz, type BuildOptions, type BuildReport } from './build.ts';
import { openTarInput } from './layer-input.ts';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';

/** Layer types converted: uncompressed or gzip tars, OCI and Docker. */
const CONVERTIBLE = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
]);

export type { Descriptor } from '../../src/oci/descriptor.ts';

export interface ConvertSummary {
  manifests: number;
  layersConverted: number;
  layersKept: number;
  layers: Array<{ from: string; to: string; diffId: string; tocDigest: string }>;
}

export class ConvertError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConvertError';
  }
}

function blobPath(root: string, digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new ConvertError(`unsupported digest ${JSON.stringify(digest)} (sha256 only)`);
  return path.join(root, 'blobs', 'sha256', m[1]!);
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

class Layout {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }
  readJson<T>(digest: string): T {
    const file = blobPath(this.root, digest);
    const bytes = fs.readFileSync(file);
    if (sha256(bytes) !== digest) throw new ConvertError(`blob ${digest} does not match its digest`);
    return JSON.parse(bytes.toString('utf8')) as T;
  }
}

class Output {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
    fs.mkdirSync(path.join(root, 'blobs', 'sha256'), { recursive: true });
  }
  putJson(value: unknown): { digest: string; size: number } {
    const bytes = Buffer.from(JSON.stringify(value));
    const digest = sha256(bytes);
    fs.writeFileSync(blobPath(this.root, digest), bytes);
    return { digest, size: bytes.length };
  }
  copyBlob(from: Layout, digest: string): void {
    const dst = blobPath(this.root, digest);
    if (!fs.existsSync(dst)) fs.copyFileSync(blobPath(from.root, digest), dst);
  }
}

interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

interface Index {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  [key: string]: unknown;
}

class Converter {
  private readonly src: Layout;
  private readonly out: Output;
  private readonly opts: BuildOptions;
  private readonly converted = new Map<string, { descriptor: Descriptor; report: BuildReport }>();
  readonly summary: ConvertSummary = { manifests: 0, layersConverted: 0, layersKept: 0, layers: [] };

  constructor(src: Layout, out: Output, opts: BuildOptions) {
    this.src = src;
    this.out = out;
    this.opts = opts;
  }

  private async layer(desc: Descriptor): Promise<{ descriptor: Descriptor; diffId?: string }> {
    if (!CONVERTIBLE.has(desc.mediaType)) {
      this.out.copyBlob(this.src, desc.digest);
      this.summary.layersKept++;
      return { descriptor: desc };
    }
    let done = this.converted.get(desc.digest);
    if (!done) {
      const input = await openTarInput(blobPath(this.src.root, desc.digest));
      const tmp = path.join(this.out.root, 'blobs', `.estargz-${process.pid}-${this.converted.size}`);
      const fd = fs.openSync(tmp, 'w');
      let report: BuildReport;
      try {
        report = await buildEstargz(input.fd, input.size, async (chunk) => {
          fs.writeSync(fd, chunk);
        }, this.opts);
      } finally {
        fs.closeSync(fd);
        input.close();
      }
      fs.renameSync(tmp, blobPath(this.out.root, report.blobDigest));
      const annotations = { ...(desc.annotations ?? {}) };
      delete annotations[ANNOTATION_TOC_DIGEST];
      delete annotations[ANNOTATION_UNCOMPRESSED_SIZE];
      const descriptor: Descriptor = {
        ...desc,
        mediaType: report.mediaType,
        digest: report.blobDigest,
        size: report.blobSize,
        annotations: { ...annotations, ...report.annotations },
      };
      done = { descriptor, report };
      this.converted.set(desc.digest, done);
      this.summary.layers.push({ from: desc.digest, to: report.blobDigest, diffId: report.diffId, tocDigest: report.tocDigest });
    }
    this.summary.layersConverted++;
    return { descriptor: done.descriptor, diffId: done.report.diffId };
  }

  private async manifest(desc: Descriptor): Promise<Descriptor> {
    const manifest = this.src.readJson<Manifest>(desc.digest);
    if (!Array.isArray(manifest.layers) || !manifest.config) throw new ConvertError(`manifest ${desc.digest} has no config or layers`);
    const config = this.src.readJson<{ rootfs?: { diff_ids?: string[] } }>(manifest.config.digest);
    const diffIds = config.rootfs?.diff_ids;
    if (!diffIds || diffIds.length !== manifest.layers.length) {
      throw new ConvertError(`config ${manifest.config.digest}: ${diffIds?.length ?? 0} diff_ids for ${manifest.layers.length} layers`);
    }
    const layers: Descriptor[] = [];
    for (let i = 0; i < manifest.layers.length; i++) {
      const { descriptor, diffId } = await this.layer(manifest.layers[i]!);
      layers.push(descriptor);
      if (diffId) diffIds[i] = diffId;
    }
    const configDesc = this.out.putJson(config);
    const configMediaType = manifest.config.mediaType === DOCKER_CONFIG ? OCI_CONFIG : manifest.config.mediaType;
    const converted: Manifest = {
      ...manifest,
      mediaType: OCI_MANIFEST,
      config: { ...manifest.config, mediaType: configMediaType, ...configDesc },
      layers,
    };
    const written = this.out.putJson(converted);
    this.summary.manifests++;
    return { ...desc, mediaType: OCI_MANIFEST, ...written };
  }

  async descriptor(desc: Descriptor): Promise<Descriptor> {
    if (desc.mediaType === OCI_MANIFEST || desc.mediaType === DOCKER_MANIFEST) return this.manifest(desc);
    if (desc.mediaType === OCI_INDEX || desc.mediaType === DOCKER_LIST) {
      const index = this.src.readJson<Index>(desc.digest);
      const manifests: Descriptor[] = [];
      for (const m of index.manifests) manifests.push(await this.descriptor(m));
      const written = this.out.putJson({ ...index, mediaType: OCI_INDEX, manifests });
      return { ...desc, mediaType: OCI_INDEX, ...written };
    }
    // Anything else (attestations, signatures) is carried over as is.
    this.out.copyBlob(this.src, desc.digest);
    return desc;
  }
}

async function extractLayoutTar(file: string, dir: string): Promise<void> {
  const extract = tarStream.extract();
  const done = (async () => {
    for await (const entry of extract) {
      const name = path.posix.normalize(entry.header.name);
      if (name.startsWith('../') || path.isAbsolute(name)) throw new ConvertError(`unsafe path ${JSON.stringify(entry.header.name)} in ${file}`);
      const target = path.join(dir, name);
      if (entry.header.type === 'directory') {
        fs.mkdirSync(target, { recursive: true });
        entry.resume();
      } else if (entry.header.type === 'file') {
        fs.mkdirSync(path.dirname(target), { recursive: true });
        await pipeline(entry, fs.createWriteStream(target));
      } else {
        entry.resume();
      }
    }
  })();
  await pipeline(fs.createReadStream(file), extract);
  await done;
}

async function packLayout(dir: string, file: string): Promise<void> {
  const pack = tarStream.pack();
  const written = pipeline(pack, fs.createWriteStream(file));
  const add = (name: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const full = path.join(dir, name);
      const stat = fs.statSync(full);
      const entry = pack.entry({ name, size: stat.size, mode: 0o644, mtime: new Date(0) }, (err) => (err ? reject(err) : resolve()));
      fs.createReadStream(full).pipe(entry);
    });
  await add('oci-layout');
  await add('index.json');
  for (const blob of fs.readdirSync(path.join(dir, 'blobs', 'sha256')).sort()) await add(`blobs/sha256/${blob}`);
  pack.finalize();
  await written;
}

export async function convertImage(src: string, dst: string, opts: BuildOptions & { dstFormat?: 'dir' | 'tar' } = {}): Promise<ConvertSummary> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-convert-'));
  try {
    let srcRoot = src;
    if (fs.statSync(src).isFile()) {
      srcRoot = path.join(scratch, 'src');
      await extractLayoutTar(src, srcRoot);
    }
    if (!fs.existsSync(path.join(srcRoot, 'index.json'))) throw new ConvertError(`${src} is not an OCI image layout (no index.json)`);
    const toTar = (opts.dstFormat ?? (dst.endsWith('.tar') ? 'tar' : 'dir')) === 'tar';
    if (fs.existsSync(dst) && (toTar || fs.readdirSync(dst).length > 0)) throw new ConvertError(`${dst} already exists`);
    const outRoot = toTar ? path.join(scratch, 'dst') : dst;
    const out = new Output(outRoot);
    const converter = new Converter(new Layout(srcRoot), out, opts);
    const index = JSON.parse(fs.readFileSync(path.join(srcRoot, 'index.json'), 'utf8')) as Index;
    const manifests: Descriptor[] = [];
    for (const m of index.manifests ?? []) manifests.push(await converter.descriptor(m));
    fs.writeFileSync(path.join(outRoot, 'index.json'), JSON.stringify({ ...index, mediaType: OCI_INDEX, manifests }));
    fs.writeFileSync(path.join(outRoot, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    if (toTar) await packLayout(outRoot, dst);
    return converter.summary;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

export interface RawConvertOptions {
  chunkSize?: string;
  level?: string;
  format?: string;
  zstdchunked?: boolean;
}

export async function runConvertImage(src: string, dst: string, raw: RawConvertOptions): Promise<void> {
  const { CliError, ExitCode } = await import('../../src/cli/exit-codes.ts');
  const int = (text: string | undefined, flag: string, fallback: number, max: number): number => {
    if (text === undefined) return fallback;
    if (!/^\d+$/.test(text) || Number(text) > max) throw new CliError(`${flag} wants a whole number up to ${max}, got ${JSON.stringify(text)}`, ExitCode.usage);
    return Number(text);
  };
  if (raw.format !== undefined && raw.format !== 'dir' && raw.format !== 'tar') throw new CliError(`--format is dir or tar, got ${JSON.stringify(raw.format)}`, ExitCode.usage);
  try {
    const summary = await convertImage(src, dst, {
      chunkSize: int(raw.chunkSize, '--chunk-size', 0, 1 << 30) || undefined,
      level: raw.zstdchunked ? int(raw.level, '--level', 3, 22) || 3 : int(raw.level, '--level', 9, 9),
      compression: raw.zstdchunked ? 'zstdchunked' : 'gzip',
      dstFormat: raw.format as 'dir' | 'tar' | undefined,
    });
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`estargz convert-image: ${(err as Error).message}`, ExitCode.failure, { cause: err });
  }
}
