/**
 * ttrpc request metadata: repeated KeyValue on the wire, one entry per value, keys lower-cased
 * as Go's MD helpers do (shim-protocol.md §1.4–1.5). Unknown keys (e.g. OpenTelemetry trace
 * context from containerd 2.x) are kept and ignored by handlers.
 */
import { create } from '@bufbuild/protobuf';
import { KeyValueSchema } from '../api/gen/ttrpc/request_pb.ts';
import type { KeyValue } from '../api/gen/ttrpc/request_pb.ts';

export type Metadata = ReadonlyMap<string, readonly string[]>;

export type MetadataInit = Metadata | Readonly<Record<string, string | readonly string[]>>;

export function metadataFromKeyValues(kvs: readonly KeyValue[]): Metadata {
  const md = new Map<string, string[]>();
  for (const { key, value } of kvs) {
    const k = key.toLowerCase();
    const values = md.get(k);
    if (values) values.push(value);
    else md.set(k, [value]);
  }
  return md;
}

export function keyValuesFromMetadata(init: MetadataInit | undefined): KeyValue[] {
  if (init === undefined) return [];
  const entries: Iterable<[string, string | readonly string[]]> = init instanceof Map ? init.entries() : Object.entries(init);
  const kvs: KeyValue[] = [];
  for (const [key, value] of entries) {
    const values = typeof value === 'string' ? [value] : value;
    for (const v of values) kvs.push(create(KeyValueSchema, { key: key.toLowerCase(), value: v }));
  }
  return kvs;
}

/** The first value of a key, if any. */
export function metadataValue(md: Metadata, key: string): string | undefined {
  return md.get(key.toLowerCase())?.[0];
}
