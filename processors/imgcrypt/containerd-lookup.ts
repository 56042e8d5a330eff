/**
 * Decryption without a payload (the "beyond upstream"; imgcrypt#205): containerd ≥ 2.1
 * pulls through the transfer service and plain `ctr` unpacks without imgcrypt's helpers, so the
 * processor gets the ciphertext on stdin but not the descriptor that holds the encryption
 * annotations. We buffer the layer to a private temp file, hash it, and find the manifest that
 * lists a layer with that digest in containerd's content store over its gRPC API:
 *  - every blob containerd fetched or imported carries `containerd.io/gc.ref.content.*` labels
 *    naming its children (manifests name their layers as `…content.l.<i>`), so Content.List tells
 *    which stored blobs reference the digest without any image record existing yet (an unpack
 *    runs before the pull creates the image);
 *  - the referring manifest is read with Content.Read and its layer descriptor taken as is.
 * Namespaces: the one given, else all of them (Namespaces.List).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Content } from '../../src/api/gen/containerd/services/content/v1/content_pb.ts';
import { Namespaces } from '../../src/api/gen/containerd/services/namespaces/v1/namespace_pb.ts';
import { GrpcConnection, grpcServiceClient } from '../../src/grpc/client.ts';
import { GrpcStreamChannel } from '../../src/grpc/server-stream.ts';
import type { LayerDescriptor } from './payload.ts';

const GC_REF_CONTENT_PREFIX = 'containerd.io/gc.ref.content.';
const NAMESPACE_HEADER = 'containerd-namespace';
/** Manifests are small; anything larger than this is not one (containerd's own limit is 4 MiB). */
const MAX_MANIFEST_BYTES = 4 << 20;

export interface BufferedLayer {
  readonly digest: string;
  readonly size: number;
  /** A path that reads the buffered bytes (`/proc/self/fd/N`): the file itself is already unlinked. */
  readonly path: string;
  close(): void;
}

/**
 * Copies `input` to a file only root can read (0700 directory, 0600 file, unlinked as soon as it
 * is open, so nothing is left behind even on SIGKILL) and returns its digest and size.
 */
export async function bufferLayer(input: Readable, tmpRoot = os.tmpdir()): Promise<BufferedLayer> {
  let dir: string | undefined;
  let fd: number | undefined;
  try {
    dir = fs.mkdtempSync(path.join(tmpRoot, 'outrigger-imgcrypt-'));
    fs.chmodSync(dir, 0o700);
    const file = path.join(dir, 'layer');
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    fs.rmSync(dir, { recursive: true, force: true });
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of input as AsyncIterable<Buffer>) {
      hash.update(chunk);
      let offset = 0;
      while (offset < chunk.length) offset += fs.writeSync(fd, chunk, offset, chunk.length - offset);
      size += chunk.length;
    }
    const held = fd;
    return {
      digest: `sha256:${hash.digest('hex')}`,
      size,
      path: `/proc/self/fd/${held}`,
      close: () => fs.closeSync(held),
    };
  } catch (error) {
    if (fd !== undefined) fs.closeSync(fd);
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot buffer the layer in ${tmpRoot}: ${(error as Error).message}`, { cause: error });
  }
}

export interface LookupOptions {
  /** containerd's gRPC socket (`/run/containerd/containerd.sock` or `unix:///…`). */
  readonly address: string;
  /** Search only this namespace; default every namespace. */
  readonly namespace?: string;
  /** Prefer a descriptor of this media type (STREAM_PROCESSOR_MEDIATYPE) when several list the digest. */
  readonly mediaType?: string;
  readonly timeoutMs?: number;
}

export interface FoundDescriptor {
  readonly descriptor: LayerDescriptor;
  readonly namespace: string;
  readonly manifest: string;
}

interface RawDescriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
  annotations?: unknown;
}

function toLayerDescriptor(raw: RawDescriptor): LayerDescriptor | undefined {
  if (typeof raw.mediaType !== 'string' || typeof raw.digest !== 'string' || typeof raw.size !== 'number') return undefined;
  const annotations: Record<string, string> = {};
  if (typeof raw.annotations === 'object' && raw.annotations !== null) {
    for (const [k, v] of Object.entries(raw.annotations)) if (typeof v === 'string') annotations[k] = v;
  }
  return { mediaType: raw.mediaType, digest: raw.digest, size: raw.size, annotations };
}

async function readBlob(stream: GrpcStreamChannel, namespace: string, digest: string, size: number, timeoutMs: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream.call(Content.method.read, { digest }, { metadata: { [NAMESPACE_HEADER]: namespace }, timeoutMs })) {
    parts.push(Buffer.from(part.data));
  }
  const bytes = Buffer.concat(parts);
  if (bytes.length !== size) throw new Error(`content ${digest} in namespace ${namespace}: read ${bytes.length} bytes, expected ${size}`);
  return bytes;
}

/** Finds the layer descriptor with `digest` in a manifest in containerd's content store. */
export async function findLayerDescriptor(digest: string, options: LookupOptions): Promise<FoundDescriptor> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const conn = GrpcConnection.unix(options.address, { defaultTimeoutMs: timeoutMs });
  const stream = new GrpcStreamChannel(options.address);
  try {
    const namespaces = options.namespace
      ? [options.namespace]
      : (await grpcServiceClient(conn, Namespaces).list({})).namespaces.map((n) => n.name);
    const candidates: FoundDescriptor[] = [];
    for (const namespace of namespaces) {
      const parents: { digest: string; size: number }[] = [];
      for await (const page of stream.call(Content.method.list, {}, { metadata: { [NAMESPACE_HEADER]: namespace }, timeoutMs })) {
        for (const info of page.info) {
          const refers = Object.entries(info.labels).some(([key, value]) => key.startsWith(GC_REF_CONTENT_PREFIX) && value === digest);
          if (refers && info.size <= BigInt(MAX_MANIFEST_BYTES)) parents.push({ digest: info.digest, size: Number(info.size) });
        }
      }
      for (const parent of parents) {
        let json: { layers?: unknown };
        try {
          json = JSON.parse((await readBlob(stream, namespace, parent.digest, parent.size, timeoutMs)).toString('utf8')) as { layers?: unknown };
        } catch {
          continue; // not JSON: not a manifest
        }
        if (!Array.isArray(json.layers)) continue;
        for (const layer of json.layers as RawDescriptor[]) {
          const descriptor = layer.digest === digest ? toLayerDescriptor(layer) : undefined;
          if (descriptor) candidates.push({ descriptor, namespace, manifest: parent.digest });
        }
      }
    }
    const preferred =
      candidates.find((c) => c.descriptor.mediaType === options.mediaType && Object.keys(c.descriptor.annotations).length > 0) ??
      candidates.find((c) => Object.keys(c.descriptor.annotations).length > 0) ??
      candidates[0];
    if (!preferred) {
      throw new Error(
        `no manifest in containerd's content store (${options.address}, namespaces: ${namespaces.join(', ') || 'none'}) lists a layer ${digest}`,
      );
    }
    return preferred;
  } finally {
    stream.close();
    conn.close();
  }
}

export interface ResolvedFromContainerd {
  readonly buffered: BufferedLayer;
  readonly found: FoundDescriptor;
}

/**
 * The no-payload path of the decrypt processor: buffers stdin, then finds its descriptor. The
 * error names the digest, the socket and the namespaces searched; the buffer is released on failure.
 */
export async function resolveFromContainerd(input: Readable, options: LookupOptions): Promise<ResolvedFromContainerd> {
  const buffered = await bufferLayer(input);
  try {
    const found = await findLayerDescriptor(buffered.digest, options);
    if (found.descriptor.size !== buffered.size) {
      throw new Error(`layer ${buffered.digest}: read ${buffered.size} bytes but manifest ${found.manifest} says ${found.descriptor.size}`);
    }
    return { buffered, found };
  } catch (error) {
    buffered.close();
    throw new Error(`no payload; looking the layer up in containerd: ${(error as Error).message}`, { cause: error });
  }
}
