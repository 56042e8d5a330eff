/**
 * google.protobuf.Any the way containerd's typeurl library builds it: the type URL is the bare
 * full message name (`containerd.events.TaskExit`), never `type.googleapis.com/…`, because
 * containerd 1.6 looks types up by exact bare name and rejects the prefixed form
 * (task-api.md §3.4). Non-protobuf Go types registered with typeurl (the OCI runtime-spec
 * Process and LinuxResources) travel as UTF-8 JSON under a `types.containerd.io/…` URL (§7.1);
 * so does imgcrypt's decrypt payload.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import { AnySchema } from '@bufbuild/protobuf/wkt';
import type { Any } from '@bufbuild/protobuf/wkt';

/** The prefix protobuf libraries add by default; accepted on input (containerd 2.x may send it), never produced. */
const GOOGLE_PREFIX = 'type.googleapis.com/';

/** typeurl registration of `specs.Process` (runtime-spec major version 1): ExecProcessRequest.spec. */
export const OCI_PROCESS_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';
/** typeurl registration of `specs.LinuxResources`: UpdateTaskRequest.resources. */
export const OCI_LINUX_RESOURCES_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources';

/** imgcrypt's `typeurl.Register(&Payload{}, …)`: the stream processor's fd-3 payload (imgcrypt.md). */
export const OCICRYPT_PAYLOAD_TYPE_URL = 'io.containerd.ocicrypt.v1.Payload';

/** An Any that could not be unpacked as asked; carries the URL found, for the caller's message. */
export class AnyTypeError extends Error {
  readonly typeUrl: string;
  constructor(message: string, typeUrl: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AnyTypeError';
    this.typeUrl = typeUrl;
  }
}

/** The bare type URL containerd uses for a protobuf message type. */
export function typeUrlOf(schema: DescMessage): string {
  return schema.typeName;
}

/** The message name an Any's URL refers to, with a `type.googleapis.com/` prefix tolerated. */
export function messageNameOf(typeUrl: string): string {
  return typeUrl.startsWith(GOOGLE_PREFIX) ? typeUrl.slice(GOOGLE_PREFIX.length) : typeUrl;
}

/** Packs a protobuf message with its bare full name as type URL. */
export function packAny<Desc extends DescMessage>(schema: Desc, message: MessageInitShape<Desc>): Any {
  const value = toBinary(schema, create(schema, message));
  return create(AnySchema, { typeUrl: typeUrlOf(schema), value });
}

/** True when the Any holds `schema` (bare or prefixed URL). */
export function anyIs(any: Any | undefined, schema: DescMessage): boolean {
  return any !== undefined && messageNameOf(any.typeUrl) === schema.typeName;
}

/** Unpacks an Any that must hold `schema`; a different or empty URL is an AnyTypeError. */
export function unpackAny<Desc extends DescMessage>(any: Any, schema: Desc): MessageShape<Desc> {
  if (!anyIs(any, schema)) {
    throw new AnyTypeError(
      `Any holds ${any.typeUrl === '' ? 'no type URL' : `"${any.typeUrl}"`}, expected "${schema.typeName}"`,
      any.typeUrl,
    );
  }
  try {
    return fromBinary(schema, any.value);
  } catch (err) {
    throw new AnyTypeError(`Any of type "${any.typeUrl}": value is not a valid ${schema.typeName}: ${String(err)}`, any.typeUrl, {
      cause: err,
    });
  }
}

/** Packs a JSON-encoded Go type the way typeurl does for registered non-proto types. */
export function packJsonAny(typeUrl: string, value: unknown): Any {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`cannot encode ${typeof value} as JSON for Any "${typeUrl}"`);
  return create(AnySchema, { typeUrl, value: new TextEncoder().encode(json) });
}

/**
 * Parses the JSON inside an Any. Like the Go runc shim, the URL is not required to match (it
 * unmarshals spec.Value whatever the URL says); pass `expectedTypeUrl` to insist on one.
 */
export function unpackJsonAny(any: Any, expectedTypeUrl?: string): unknown {
  if (expectedTypeUrl !== undefined && any.typeUrl !== expectedTypeUrl) {
    throw new AnyTypeError(`Any holds "${any.typeUrl}", expected "${expectedTypeUrl}"`, any.typeUrl);
  }
  const text = new TextDecoder('utf-8', { fatal: true }).decode(any.value);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new AnyTypeError(`Any of type "${any.typeUrl}": value is not JSON: ${String(err)}`, any.typeUrl, { cause: err });
  }
}
