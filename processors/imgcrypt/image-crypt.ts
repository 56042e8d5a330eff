/**
 * `imgcrypt encrypt-image` / `decrypt-image` on OCI image-layout directories (what
 * `skopeo copy oci:DIR:TAG` reads and writes). Layer blobs go through layer-crypto.ts; this module
 * picks the layers (ctr-enc's --layer and --platform), writes the new blobs and rewrites every
 * manifest and index on the way up so digests and sizes stay consistent (imgcrypt.md §6):
 *  - encryption: media type `<type>+encrypted` (Docker layer types become OCI ones), the key and
 *    pubopts annotations added, earlier `org.opencontainers.image.enc.*` annotations dropped;
 *    the private options record the source blob's digest, as ocicrypt does;
 *  - decryption: `+encrypted` removed and the `org.opencontainers.image.enc.*` annotations
 *    stripped, as containers/image does (ctr-enc's Docker types on the way back are not copied:
 *    they do not round-trip);
 *  - config blobs (diff_ids) stay byte-identical; already-encrypted layers are never
 *    re-encrypted; Docker manifests are rewritten as OCI manifests, which alone carry annotations.
 */
import type { Descriptor, Platform } from '../../src/oci/descriptor.ts';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import type { DecryptConfig, EncryptConfig } from './key-wrapper.ts';
import { ENC_ANNOTATION_PREFIX } from './annotations.ts';
import { decryptLayerStream, encryptLayerStream } from './layer-crypto.ts';
import { decryptedMediaType, encryptedMediaType, isEncryptedMediaType } from './media-types.ts';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** Layer types ocicrypt encrypts (spec.go plus the Docker types ctr-enc maps to OCI). */
const ENCRYPTABLE = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
]);

export type { Descriptor, Platform } from '../../src/oci/descriptor.ts';

interface ManifestJson {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  [key: string]: unknown;
}

interface IndexJson {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  [key: string]: unknown;
}

export type ImageCryptOperation =
  | { readonly kind: 'encrypt'; readonly ec: EncryptConfig }
  | { readonly kind: 'decrypt'; readonly dc: DecryptConfig };

export interface ImageCryptOptions {
  readonly src: string;
  readonly dst: string;
  readonly operation: ImageCryptOperation;
  /** ctr-enc's --layer: indexes into each manifest's layers, negative from the top; empty = all. */
  readonly layers?: readonly number[];
  /** ctr-enc's --platform: `os/arch[/variant]`; empty = all platforms. */
  readonly platforms?: readonly string[];
}

export interface LayerChange {
  readonly manifest: string;
  readonly index: number;
  readonly from: string;
  readonly to: string;
  readonly mediaType: string;
  /** For decryption: the scheme whose key unwrapped the layer. */
  readonly scheme?: string;
}

export interface ImageCryptSummary {
  readonly changed: LayerChange[];
  /** Layers selected but left alone, with why (already encrypted, not encrypted, not a layer type). */
  readonly kept: { readonly manifest: string; readonly index: number; readonly digest: string; readonly reason: string }[];
  readonly manifestsSkipped: { readonly digest: string; readonly reason: string }[];
}

export class ImageCryptError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ImageCryptError';
  }
}

function blobPath(root: string, digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new ImageCryptError(`unsupported digest ${JSON.stringify(digest)} (sha256 only)`);
  return path.join(root, 'blobs', 'sha256', m[1]!);
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Manifests, indexes and the layout's index.json are read whole into memory to be parsed, so
 * they are capped: registries and containerd refuse manifests over 4 MiB, so nothing an image
 * tool wrote comes near it.
 */
export const MAX_MANIFEST_BYTES = 4 << 20;
/** Image configs carry the build history and may outgrow a manifest, but not by this much. */
export const MAX_CONFIG_BYTES = 16 << 20;

function mib(bytes: number): string {
  return `${bytes / (1024 * 1024)} MiB`;
}

/** What a JSON blob is, for messages and for its cap. */
type JsonBlobKind = 'manifest' | 'index' | 'config' | 'manifest or index';

function capFor(kind: JsonBlobKind): number {
  return kind === 'config' ? MAX_CONFIG_BYTES : MAX_MANIFEST_BYTES;
}

/**
 * Reads a file of at most `cap` bytes (and exactly `expected` when given) without ever holding
 * more than that: the size is checked with fstat before reading, and the read stops one byte past
 * the limit, so a FIFO, a device or a file still growing cannot make it read without end.
 * `what` names the file in errors.
 */
function readCapped(file: string, what: string, cap: number, capName: string, expected?: number): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (error) {
    throw new ImageCryptError(`${what}: cannot open ${file}: ${(error as Error).message}`);
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new ImageCryptError(`${what}: ${file} is not a regular file`);
    if (stat.size > cap) throw new ImageCryptError(`${what}: ${file} is ${stat.size} bytes, larger than the ${mib(cap)} limit for ${capName}`);
    if (expected !== undefined && stat.size !== expected) {
      throw new ImageCryptError(`${what}: ${file} is ${stat.size} bytes but its descriptor says ${expected}`);
    }
    const limit = expected ?? cap;
    // One byte more than allowed, to notice a file that grew after fstat.
    const buf = Buffer.allocUnsafe(Math.min(stat.size, limit) + 1);
    let length = 0;
    for (;;) {
      if (length === buf.length) throw new ImageCryptError(`${what}: ${file} grew past ${limit} bytes while being read`);
      const n = fs.readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (expected !== undefined && length !== expected) throw new ImageCryptError(`${what}: ${file} is ${length} bytes but its descriptor says ${expected}`);
    return buf.subarray(0, length);
  } finally {
    fs.closeSync(fd);
  }
}

/** A descriptor's size as a byte count, or an error naming the descriptor. */
function declaredSize(desc: Descriptor, what: string): number {
  const size: unknown = desc.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new ImageCryptError(`${what}: descriptor size ${JSON.stringify(size)} is not a byte count`);
  return size;
}

/** `os/arch[/variant]` → matcher; `linux/amd64` also matches a descriptor without a variant. */
export function parsePlatform(spec: string): Platform {
  const parts = spec.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) throw new ImageCryptError(`--platform ${spec}: expected os/arch[/variant]`);
  return { os: parts[0]!, architecture: parts[1]!, ...(parts[2] ? { variant: parts[2] } : {}) };
}

function platformMatches(wanted: readonly Platform[], have: Platform | undefined): boolean {
  if (wanted.length === 0) return true;
  if (!have) return false;
  return wanted.some((w) => w.os === have.os && w.architecture === have.architecture && (w.variant === undefined || w.variant === have.variant));
}

function describePlatform(p: Platform | undefined): string {
  return p ? `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}` : 'unknown platform';
}

class ImageCrypter {
  private readonly opts: ImageCryptOptions;
  private readonly wantedPlatforms: readonly Platform[];
  /** Source blob digest → its replacement, so a layer shared by manifests is processed once. */
  private readonly layerResults = new Map<string, Descriptor>();
  private readonly rewritten = new Map<string, Descriptor>();
  private tmpCounter = 0;
  readonly summary: ImageCryptSummary = { changed: [], kept: [], manifestsSkipped: [] };

  constructor(opts: ImageCryptOptions) {
    this.opts = opts;
    this.wantedPlatforms = (opts.platforms ?? []).map(parsePlatform);
  }

  /**
   * A manifest, index or config blob: refused before it is read when its descriptor declares more
   * than the cap for its kind, or when the file's size differs from the descriptor; then checked
   * against the digest.
   */
  private readJsonBlob(desc: Descriptor, kind: JsonBlobKind): Buffer {
    const what = `${kind} ${desc.digest}`;
    const file = blobPath(this.opts.src, desc.digest);
    const cap = capFor(kind);
    const capName = kind === 'config' ? 'image configs' : 'manifests and indexes';
    const size = declaredSize(desc, what);
    if (size > cap) throw new ImageCryptError(`${what}: its descriptor declares ${size} bytes, larger than the ${mib(cap)} limit for ${capName}; not read`);
    if (!fs.existsSync(file)) throw new ImageCryptError(`${what} is missing from ${this.opts.src} (no ${file})`);
    const bytes = readCapped(file, what, cap, capName, size);
    if (sha256(bytes) !== desc.digest) throw new ImageCryptError(`${what} in ${this.opts.src} does not match its digest (read ${sha256(bytes)})`);
    return bytes;
  }

  private parseJsonBlob(desc: Descriptor, kind: JsonBlobKind): unknown {
    const bytes = this.readJsonBlob(desc, kind);
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      throw new ImageCryptError(`${kind} ${desc.digest} in ${this.opts.src} is not JSON: ${(error as Error).message}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ImageCryptError(`${kind} ${desc.digest} in ${this.opts.src} is not a JSON object`);
    return json;
  }

  /** A layer blob is streamed, not read whole; its size is still checked against the descriptor first. */
  private checkLayerSize(desc: Descriptor): void {
    const what = `layer ${desc.digest}`;
    const size = declaredSize(desc, what);
    const file = blobPath(this.opts.src, desc.digest);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file);
    } catch (error) {
      throw new ImageCryptError(`${what} is missing from ${this.opts.src}: ${(error as Error).message}`);
    }
    if (!stat.isFile()) throw new ImageCryptError(`${what}: ${file} is not a regular file`);
    if (stat.size !== size) throw new ImageCryptError(`${what}: ${file} is ${stat.size} bytes but its descriptor says ${size}`);
  }

  private copyBlob(digest: string): void {
    const from = blobPath(this.opts.src, digest);
    const to = blobPath(this.opts.dst, digest);
    if (from === to || fs.existsSync(to)) return;
    fs.copyFileSync(from, to);
  }

  private putJson(value: unknown): { digest: string; size: number } {
    const bytes = Buffer.from(JSON.stringify(value));
    const digest = sha256(bytes);
    fs.writeFileSync(blobPath(this.opts.dst, digest), bytes);
    return { digest, size: bytes.length };
  }

  private tempBlob(): string {
    return path.join(this.opts.dst, 'blobs', `.imgcrypt-${process.pid}-${this.tmpCounter++}`);
  }

  private async encryptLayer(desc: Descriptor, ec: EncryptConfig): Promise<Descriptor> {
    this.checkLayerSize(desc);
    const tmp = this.tempBlob();
    try {
      const result = await encryptLayerStream(fs.createReadStream(blobPath(this.opts.src, desc.digest)), fs.createWriteStream(tmp), ec, {
        sourceDigest: desc.digest,
      });
      if (result.plaintextDigest !== desc.digest) throw new ImageCryptError(`layer ${desc.digest} in ${this.opts.src} does not match its digest (read ${result.plaintextDigest})`);
      fs.renameSync(tmp, blobPath(this.opts.dst, result.digest));
      const kept = Object.fromEntries(Object.entries(desc.annotations ?? {}).filter(([k]) => !k.startsWith(ENC_ANNOTATION_PREFIX)));
      return { ...desc, mediaType: encryptedMediaType(desc.mediaType), digest: result.digest, size: result.size, annotations: { ...kept, ...result.annotations } };
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  private async decryptLayer(desc: Descriptor, dc: DecryptConfig): Promise<{ descriptor: Descriptor; scheme: string }> {
    this.checkLayerSize(desc);
    const tmp = this.tempBlob();
    // The HMAC already proves the ciphertext; the digest check names a blob that is not what the manifest says.
    const hash = createHash('sha256');
    const source = fs.createReadStream(blobPath(this.opts.src, desc.digest));
    const hashed = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        done(null, chunk);
      },
    });
    source.on('error', (error) => hashed.destroy(error));
    // Opened here, not lazily by the stream, so the cleanup below never races a late open that recreates tmp.
    const sink = fs.createWriteStream(tmp, { fd: fs.openSync(tmp, 'w') });
    try {
      const result = await decryptLayerStream(source.pipe(hashed), sink, desc.annotations ?? {}, dc);
      const read = `sha256:${hash.digest('hex')}`;
      if (read !== desc.digest) throw new ImageCryptError(`layer ${desc.digest} in ${this.opts.src} does not match its digest (read ${read})`);
      fs.renameSync(tmp, blobPath(this.opts.dst, result.digest));
      const { annotations: _dropped, ...rest } = desc;
      const kept = Object.fromEntries(Object.entries(desc.annotations ?? {}).filter(([k]) => !k.startsWith(ENC_ANNOTATION_PREFIX)));
      const descriptor: Descriptor = {
        ...rest,
        mediaType: decryptedMediaType(desc.mediaType),
        digest: result.digest,
        size: result.size,
        ...(Object.keys(kept).length > 0 ? { annotations: kept } : {}),
      };
      return { descriptor, scheme: result.scheme };
    } finally {
      // A wrong key fails before the streams are consumed: close them rather than leave the fds to GC.
      source.destroy();
      sink.destroy();
      fs.rmSync(tmp, { force: true });
    }
  }

  private selectedIndexes(count: number): Set<number> {
    const wanted = this.opts.layers ?? [];
    if (wanted.length === 0) return new Set([...Array(count).keys()]);
    const out = new Set<number>();
    for (const i of wanted) {
      const at = i < 0 ? count + i : i;
      if (at >= 0 && at < count) out.add(at);
    }
    return out;
  }

  private async manifest(desc: Descriptor, inheritedPlatform: Platform | undefined): Promise<Descriptor> {
    const manifest = this.parseJsonBlob(desc, 'manifest') as ManifestJson;
    if (!Array.isArray(manifest.layers) || !manifest.config) throw new ImageCryptError(`manifest ${desc.digest} has no config or layers`);
    let platform = desc.platform ?? inheritedPlatform;
    if (!platform) {
      const config = this.parseJsonBlob(manifest.config, 'config') as Partial<Platform>;
      if (typeof config.os === 'string' && typeof config.architecture === 'string') {
        platform = { os: config.os, architecture: config.architecture, ...(typeof config.variant === 'string' ? { variant: config.variant } : {}) };
      }
    }
    const copyAll = (): Descriptor => {
      this.copyBlob(desc.digest);
      this.copyBlob(manifest.config.digest);
      for (const layer of manifest.layers) this.copyBlob(layer.digest);
      return desc;
    };
    if (!platformMatches(this.wantedPlatforms, platform)) {
      this.summary.manifestsSkipped.push({ digest: desc.digest, reason: `platform ${describePlatform(platform)} not selected` });
      return copyAll();
    }
    const selected = this.selectedIndexes(manifest.layers.length);
    const operation = this.opts.operation;
    let changed = false;
    const layers: Descriptor[] = [];
    for (const [index, layer] of manifest.layers.entries()) {
      const keep = (reason?: string): void => {
        if (reason) this.summary.kept.push({ manifest: desc.digest, index, digest: layer.digest, reason });
        this.copyBlob(layer.digest);
        layers.push(layer);
      };
      if (!selected.has(index)) {
        keep();
        continue;
      }
      const done = this.layerResults.get(layer.digest);
      if (done) {
        layers.push(done);
        changed = true;
        continue;
      }
      let replacement: Descriptor;
      let scheme: string | undefined;
      try {
        if (operation.kind === 'encrypt') {
          if (isEncryptedMediaType(layer.mediaType)) {
            keep('already encrypted');
            continue;
          }
          if (!ENCRYPTABLE.has(layer.mediaType)) {
            keep(`media type ${layer.mediaType} is not an encryptable layer type`);
            continue;
          }
          replacement = await this.encryptLayer(layer, operation.ec);
        } else {
          if (!isEncryptedMediaType(layer.mediaType)) {
            keep('not encrypted');
            continue;
          }
          ({ descriptor: replacement, scheme } = await this.decryptLayer(layer, operation.dc));
        }
      } catch (error) {
        throw new ImageCryptError(
          `${operation.kind === 'encrypt' ? 'encrypting' : 'decrypting'} layer ${index} (${layer.digest}) of manifest ${desc.digest} (${describePlatform(platform)}): ${(error as Error).message}`,
          { cause: error },
        );
      }
      this.layerResults.set(layer.digest, replacement);
      this.summary.changed.push({ manifest: desc.digest, index, from: layer.digest, to: replacement.digest, mediaType: replacement.mediaType, ...(scheme ? { scheme } : {}) });
      layers.push(replacement);
      changed = true;
    }
    if (!changed) return copyAll();
    this.copyBlob(manifest.config.digest);
    // Only OCI manifests carry layer annotations; a Docker schema2 manifest is rewritten as OCI, as skopeo does.
    const mediaType = manifest.mediaType === DOCKER_MANIFEST || manifest.mediaType === undefined ? OCI_MANIFEST : manifest.mediaType;
    const out: ManifestJson = { ...manifest, mediaType, layers };
    const stored = this.putJson(out);
    return { ...desc, mediaType, ...stored };
  }

  private async index(desc: Descriptor): Promise<Descriptor> {
    const index = this.parseJsonBlob(desc, 'index') as IndexJson;
    if (!Array.isArray(index.manifests)) throw new ImageCryptError(`index ${desc.digest} has no manifests`);
    const manifests = await this.descriptors(index.manifests);
    if (manifests.every((m, i) => m.digest === index.manifests[i]!.digest)) {
      this.copyBlob(desc.digest);
      return desc;
    }
    const mediaType = index.mediaType === DOCKER_LIST || index.mediaType === undefined ? OCI_INDEX : index.mediaType;
    const stored = this.putJson({ ...index, mediaType, manifests });
    return { ...desc, mediaType, ...stored };
  }

  private async descriptor(desc: Descriptor, platform?: Platform): Promise<Descriptor> {
    const cached = this.rewritten.get(desc.digest);
    if (cached) return { ...desc, mediaType: cached.mediaType, digest: cached.digest, size: cached.size };
    let result: Descriptor;
    if (desc.mediaType === OCI_INDEX || desc.mediaType === DOCKER_LIST) result = await this.index(desc);
    else if (desc.mediaType === OCI_MANIFEST || desc.mediaType === DOCKER_MANIFEST) result = await this.manifest(desc, platform);
    else {
      // Some writers omit mediaType on index entries: look inside.
      const json = this.parseJsonBlob(desc, 'manifest or index') as Partial<IndexJson & ManifestJson>;
      if (Array.isArray(json.manifests)) result = await this.index({ ...desc, mediaType: json.mediaType ?? OCI_INDEX });
      else if (Array.isArray(json.layers)) result = await this.manifest({ ...desc, mediaType: json.mediaType ?? OCI_MANIFEST }, platform);
      else throw new ImageCryptError(`descriptor ${desc.digest} (${desc.mediaType}) is neither an index nor a manifest`);
    }
    this.rewritten.set(desc.digest, result);
    return result;
  }

  private async descriptors(list: readonly Descriptor[]): Promise<Descriptor[]> {
    const out: Descriptor[] = [];
    for (const d of list) out.push(await this.descriptor(d, d.platform));
    return out;
  }

  async run(): Promise<void> {
    const { src, dst } = this.opts;
    const indexFile = path.join(src, 'index.json');
    if (!fs.existsSync(indexFile)) throw new ImageCryptError(`${src} is not an OCI image layout (no index.json)`);
    const indexBytes = readCapped(indexFile, `${src}/index.json`, MAX_MANIFEST_BYTES, 'manifests and indexes');
    let top: IndexJson;
    try {
      top = JSON.parse(indexBytes.toString('utf8')) as IndexJson;
    } catch (error) {
      throw new ImageCryptError(`${src} is not an OCI image layout (index.json: ${(error as Error).message})`);
    }
    if (typeof top !== 'object' || top === null || !Array.isArray(top.manifests)) throw new ImageCryptError(`${src}/index.json has no manifests`);
    fs.mkdirSync(path.join(dst, 'blobs', 'sha256'), { recursive: true });
    const manifests = await this.descriptors(top.manifests);
    fs.writeFileSync(path.join(dst, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    // index.json last: until then DST does not look like a finished layout.
    const tmp = path.join(dst, `.index.json.${process.pid}`);
    fs.writeFileSync(tmp, JSON.stringify({ ...top, manifests }));
    fs.renameSync(tmp, path.join(dst, 'index.json'));
  }
}

/** Encrypts or decrypts the selected layers of the layout SRC into the layout DST (may be SRC). */
export async function cryptImage(opts: ImageCryptOptions): Promise<ImageCryptSummary> {
  const crypter = new ImageCrypter(opts);
  await crypter.run();
  return crypter.summary;
}
