/**
 * The bytes around `start` and `delete` (task-api.md §9, shim-protocol.md §2.2–2.8):
 *
 * - stdin of `start`: nothing (no options), a protobuf `google.protobuf.Any` holding the runtime
 *   options (containerd 1.6–2.2), or a `containerd.runtime.bootstrap.v1.BootstrapParams` with the
 *   options Any inside `extensions` (2.3+). Any{1 string, 2 bytes} also parses as
 *   BootstrapParams{1 string, 2 string}, so the two are told apart by content: a BootstrapParams
 *   names our task id and namespace in fields 1 and 2, an Any names a message type in field 1.
 * - stdout of `start`: the bare `unix://` address, which containerd 1.6 through 2.3 accept and
 *   which selects containerd.task.v2.Task (we serve v3 too). No newline, nothing else.
 * - stdout of `delete`: a binary DeleteResponse, no framing.
 */
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import type { Any } from '@bufbuild/protobuf/wkt';
import type { BootstrapParams, Extension, LogLevel } from '../../../src/api/gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts';
import { encodeDeleteResponse } from './delete-response.ts';
import type { DeleteResult } from './delete-response.ts';

export interface StartInput {
  /** Runtime options as containerd sent them (absent when it sent none). */
  readonly options: Any | undefined;
  /** Present when containerd ≥ 2.3 sent BootstrapParams. */
  readonly bootstrap: BootstrapParams | undefined;
}

/** A type URL as typeurl writes it: a dotted message name, optionally behind a host/path prefix. */
const TYPE_URL = /^(?:[A-Za-z0-9.-]+\/)*[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$/;

/*
 * Decoded with the wire reader rather than the generated schemas: `start` runs for every task,
 * and building the schema registries for these two messages cost it more than the rest of its
 * work (docs/shim-grouping.md, "Latency"). test/shim-handshake.test.ts feeds it bytes made by the
 * generated encoders.
 */
const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeAny(bytes: Uint8Array): Any {
  const r = new BinaryReader(bytes);
  let typeUrl = '';
  let value: Uint8Array = new Uint8Array();
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) typeUrl = utf8.decode(r.bytes());
    else if (field === 2 && wireType === WireType.LengthDelimited) value = r.bytes();
    else r.skip(wireType, field);
  }
  return { $typeName: 'google.protobuf.Any', typeUrl, value };
}

function decodeBootstrapParams(bytes: Uint8Array): BootstrapParams {
  const r = new BinaryReader(bytes);
  const p: BootstrapParams = {
    $typeName: 'containerd.runtime.bootstrap.v1.BootstrapParams',
    instanceId: '',
    namespace: '',
    logLevel: 0 as LogLevel,
    containerdVersion: '',
    containerdTtrpcAddress: '',
    containerdGrpcAddress: '',
    containerdBinary: '',
    extensions: [],
  };
  const str = () => utf8.decode(r.bytes());
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    const ld = wireType === WireType.LengthDelimited;
    if (field === 1 && ld) p.instanceId = str();
    else if (field === 2 && ld) p.namespace = str();
    else if (field === 3 && wireType === WireType.Varint) p.logLevel = r.int32() as LogLevel;
    else if (field === 4 && ld) p.containerdVersion = str();
    else if (field === 5 && ld) p.containerdTtrpcAddress = str();
    else if (field === 6 && ld) p.containerdGrpcAddress = str();
    else if (field === 7 && ld) p.containerdBinary = str();
    else if (field === 8 && ld) p.extensions.push(decodeExtension(r.bytes()));
    else if (field === 9 && ld) p.socketDir = str();
    else r.skip(wireType, field);
  }
  return p;
}

function decodeExtension(bytes: Uint8Array): Extension {
  const r = new BinaryReader(bytes);
  const e: Extension = { $typeName: 'containerd.runtime.bootstrap.v1.Extension' };
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) e.value = decodeAny(r.bytes());
    else r.skip(wireType, field);
  }
  return e;
}

export function parseStartInput(bytes: Uint8Array, expect: { readonly id: string; readonly namespace: string }): StartInput {
  if (bytes.length === 0) return { options: undefined, bootstrap: undefined };
  let params: BootstrapParams | undefined;
  try {
    params = decodeBootstrapParams(bytes);
  } catch {
    params = undefined;
  }
  if (params !== undefined && looksLikeBootstrap(params, expect)) {
    const options = params.extensions.map((e) => e.value).find((v): v is Any => v !== undefined && v.typeUrl !== '');
    return { options, bootstrap: params };
  }
  let any: Any;
  try {
    any = decodeAny(bytes);
  } catch (err) {
    throw new Error(`shim start: stdin (${bytes.length} bytes) is neither BootstrapParams nor a protobuf Any: ${String(err)}`, { cause: err });
  }
  if (any.typeUrl !== '' && !TYPE_URL.test(any.typeUrl)) {
    throw new Error(`shim start: stdin holds an Any with an implausible type URL ${JSON.stringify(any.typeUrl)}`);
  }
  return { options: any.typeUrl === '' ? undefined : any, bootstrap: undefined };
}

function looksLikeBootstrap(p: BootstrapParams, expect: { readonly id: string; readonly namespace: string }): boolean {
  if (p.namespace !== '' && p.namespace === expect.namespace && (p.instanceId === '' || p.instanceId === expect.id)) return true;
  // Fields an Any cannot have are proof enough.
  return p.containerdTtrpcAddress !== '' || p.containerdGrpcAddress !== '' || p.extensions.length > 0 || p.containerdVersion !== '';
}

export { startOutput } from './start-output.ts';

/** What `delete` prints: the DeleteResponse containerd decodes (encoded without the protobuf runtime). */
export function deleteOutput(response: DeleteResult): Uint8Array {
  return encodeDeleteResponse(response);
}
