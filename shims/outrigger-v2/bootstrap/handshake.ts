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
import { fromBinary } from '@bufbuild/protobuf';
import { AnySchema } from '@bufbuild/protobuf/wkt';
import type { Any } from '@bufbuild/protobuf/wkt';
import { BootstrapParamsSchema } from '../../../src/api/gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts';
import type { BootstrapParams } from '../../../src/api/gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts';
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

export function parseStartInput(bytes: Uint8Array, expect: { readonly id: string; readonly namespace: string }): StartInput {
  if (bytes.length === 0) return { options: undefined, bootstrap: undefined };
  let params: BootstrapParams | undefined;
  try {
    params = fromBinary(BootstrapParamsSchema, bytes);
  } catch {
    params = undefined;
  }
  if (params !== undefined && looksLikeBootstrap(params, expect)) {
    const options = params.extensions.map((e) => e.value).find((v): v is Any => v !== undefined && v.typeUrl !== '');
    return { options, bootstrap: params };
  }
  let any: Any;
  try {
    any = fromBinary(AnySchema, bytes);
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
