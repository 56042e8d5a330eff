/**
 * Where a shim serves: `/run/containerd/s/<hex sha256("<-address>/<namespace>/<group>")>`, the
 * Go shim's convention (shim-protocol.md §2.3). The directory is fixed, whatever containerd's
 * state dir, and the hash covers the -address value exactly as passed. The group is the first
 * grouping annotation present in the bundle's config.json, else the task id, so every
 * container of one CRI sandbox reaches the same shim process (§2.7).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';

export const SOCKET_DIR = '/run/containerd/s';

/** Annotations that put containers in one shim, in the order the runc shim consults them. */
export const GROUP_ANNOTATIONS = ['io.containerd.runc.v2.group', 'io.kubernetes.cri.sandbox-id'] as const;

/**
 * The group of `ShimGrouping = "node"`: one shim per containerd namespace. `@` cannot occur in a
 * containerd identifier, so no task id or sandbox id hashes to the same socket.
 */
export const NODE_GROUP = '@node';

export function groupingKey(id: string, annotations: Readonly<Record<string, string>> | undefined): string {
  for (const key of GROUP_ANNOTATIONS) {
    const value = annotations?.[key];
    if (value !== undefined && value !== '') return value;
  }
  return id;
}

/** Annotations of the OCI spec in `bundle`/config.json (none when it has none). */
export function readBundleAnnotations(bundle: string): Record<string, string> {
  const file = path.join(bundle, 'config.json');
  let spec: unknown;
  try {
    spec = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`shim start: cannot read OCI spec ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const annotations = (spec as { annotations?: unknown }).annotations;
  if (annotations === undefined || annotations === null) return {};
  if (typeof annotations !== 'object') throw new Error(`shim start: ${file}: annotations is not an object`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotations)) if (typeof v === 'string') out[k] = v;
  return out;
}

export function socketPath(containerdAddress: string, namespace: string, group: string, dir: string = SOCKET_DIR): string {
  const hash = createHash('sha256').update(`${containerdAddress}/${namespace}/${group}`).digest('hex');
  return path.join(dir, hash);
}

export function socketAddress(socketFile: string): string {
  return `unix://${socketFile}`;
}
