/**
 * The processor payload containerd passes on fd 3 (imgcrypt.md §1, §2): a protobuf
 * `google.protobuf.Any` whose type_url is `io.containerd.ocicrypt.v1.Payload` and whose value is
 * JSON (typeurl marshals imgcrypt's Go struct with encoding/json):
 * `{"DecryptConfig":{"Parameters":{name:[b64|null]}|null},"Descriptor":{mediaType,digest,size,annotations}}`.
 *
 * containerd passes fd 3 only when it has a payload for the processor's config id. Without one,
 * fd 3 in a Node process is libuv's own epoll fd: fstat first, and treat fd 3 as the payload only
 * when it is a pipe or socket. It is read through net.Socket, which works whether containerd's
 * end is blocking or not (fs reads fail with EAGAIN on a non-blocking pipe).
 */
import fs from 'node:fs';
import net from 'node:net';
import { decodeStdBase64 } from './base64-std.ts';

export const PAYLOAD_FD = 3;
export const PAYLOAD_TYPE_URL = 'io.containerd.ocicrypt.v1.Payload';
/** A payload holds a descriptor and perhaps a few keys; anything this large is not one. */
const MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;

export interface LayerDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface ProcessorPayload {
  readonly descriptor: LayerDescriptor;
  /** DecryptConfig.Parameters, base64-decoded; null elements are Go's nil []byte. */
  readonly parameters: Readonly<Record<string, readonly (Buffer | null)[]>>;
}

/** True when fd 3 is something containerd could have passed (a pipe or socket), not Node's epoll fd. */
export function payloadFdPresent(fd = PAYLOAD_FD): boolean {
  try {
    const stat = fs.fstatSync(fd);
    return stat.isFIFO() || stat.isSocket();
  } catch {
    return false;
  }
}

/** Reads fd 3 to EOF; undefined when containerd passed none. */
export async function readPayloadFd(fd = PAYLOAD_FD): Promise<Buffer | undefined> {
  if (!payloadFdPresent(fd)) return undefined;
  const socket = new net.Socket({ fd, readable: true, writable: false });
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of socket) {
      total += (chunk as Buffer).length;
      if (total > MAX_PAYLOAD_BYTES) throw new Error(`payload on fd ${fd} is larger than ${MAX_PAYLOAD_BYTES} bytes`);
      chunks.push(chunk as Buffer);
    }
  } finally {
    socket.destroy();
  }
  return Buffer.concat(chunks, total);
}

function readVarint(buf: Buffer, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (let i = at; i < buf.length && shift < 49; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, i + 1];
    shift += 7;
  }
  throw new Error(`truncated or oversized varint at byte ${at}`);
}

/** Splits a protobuf Any into type_url and value (unknown fields are skipped as protobuf requires). */
export function parseAny(bytes: Buffer): { typeUrl: string; value: Buffer } {
  let typeUrl = '';
  let value = Buffer.alloc(0);
  let at = 0;
  while (at < bytes.length) {
    const [key, afterKey] = readVarint(bytes, at);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 2) {
      const [len, start] = readVarint(bytes, afterKey);
      if (start + len > bytes.length) throw new Error(`field ${field} runs past the end (${len} bytes at ${start} of ${bytes.length})`);
      const body = bytes.subarray(start, start + len);
      if (field === 1) typeUrl = body.toString('utf8');
      else if (field === 2) value = Buffer.from(body);
      at = start + len;
    } else if (wire === 0) {
      at = readVarint(bytes, afterKey)[1];
    } else if (wire === 1) at = afterKey + 8;
    else if (wire === 5) at = afterKey + 4;
    else throw new Error(`unsupported protobuf wire type ${wire} at byte ${at}`);
  }
  return { typeUrl, value };
}

/** Go's encoding/json matches struct fields case-insensitively; so do we. */
function field(obj: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(obj, name)) return obj[name];
  const lower = name.toLowerCase();
  const key = Object.keys(obj).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : obj[key];
}

function asObject(v: unknown, what: string): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

export function parsePayload(bytes: Buffer): ProcessorPayload {
  if (bytes.length === 0) throw new Error('payload is empty (type with url "" not found)');
  const { typeUrl, value } = parseAny(bytes);
  if (typeUrl !== PAYLOAD_TYPE_URL && !typeUrl.endsWith(`/${PAYLOAD_TYPE_URL}`)) {
    throw new Error(`unknown payload type "${typeUrl}" (expected ${PAYLOAD_TYPE_URL})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(value.toString('utf8'));
  } catch (err) {
    throw new Error(`payload value is not JSON: ${(err as Error).message}`);
  }
  const root = asObject(json, 'payload') ?? {};
  const desc = asObject(field(root, 'Descriptor'), 'payload Descriptor');
  if (desc === undefined) throw new Error('payload has no Descriptor');
  const annotationsRaw = asObject(field(desc, 'annotations'), 'payload Descriptor.annotations') ?? {};
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotationsRaw)) if (typeof v === 'string') annotations[k] = v;
  const descriptor: LayerDescriptor = {
    mediaType: String(field(desc, 'mediaType') ?? ''),
    digest: String(field(desc, 'digest') ?? ''),
    size: Number(field(desc, 'size') ?? 0),
    annotations,
  };
  const dc = asObject(field(root, 'DecryptConfig'), 'payload DecryptConfig');
  const params = dc === undefined ? undefined : asObject(field(dc, 'Parameters'), 'payload DecryptConfig.Parameters');
  const parameters: Record<string, (Buffer | null)[]> = {};
  for (const [name, list] of Object.entries(params ?? {})) {
    if (list === null) continue;
    if (!Array.isArray(list)) throw new Error(`payload DecryptConfig.Parameters.${name} is not a list`);
    parameters[name] = list.map((item, i) => {
      if (item === null) return null;
      if (typeof item !== 'string') throw new Error(`payload DecryptConfig.Parameters.${name}[${i}] is not a base64 string`);
      return decodeStdBase64(item, `payload DecryptConfig.Parameters.${name}[${i}]`);
    });
  }
  return { descriptor, parameters };
}

/** Encodes a payload as containerd would send it (used by tests and tools that run the processor themselves). */
export function encodePayload(descriptor: LayerDescriptor, parameters: Readonly<Record<string, readonly (Uint8Array | null)[]>> | null = null): Buffer {
  const params = parameters === null ? null : Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, v.map((b) => (b === null ? null : Buffer.from(b).toString('base64')))]));
  const value = Buffer.from(JSON.stringify({ DecryptConfig: { Parameters: params }, Descriptor: descriptor }));
  const varint = (n: number): Buffer => {
    const out: number[] = [];
    while (n > 0x7f) {
      out.push((n % 128) | 0x80);
      n = Math.floor(n / 128);
    }
    out.push(n);
    return Buffer.from(out);
  };
  const url = Buffer.from(PAYLOAD_TYPE_URL);
  return Buffer.concat([Buffer.from([0x0a]), varint(url.length), url, Buffer.from([0x12]), varint(value.length), value]);
}
