/**
 * The DeleteResponse `delete` prints (task-api.md §9, shim-protocol.md §2.8). containerd runs
 * `delete` after every task, and building the generated schema registries would cost that run
 * more than everything else it does, so the three fields are written with protobuf-es's
 * BinaryWriter directly (proto3 rules: zero scalars omitted; exited_at always written, as the
 * Go shims do). test/shim-delete-response.test.ts checks it against the generated encoder.
 *   1 pid uint32, 2 exit_status uint32, 3 exited_at google.protobuf.Timestamp{1 seconds int64, 2 nanos int32}.
 */
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

export interface DeleteResult {
  readonly pid: number;
  readonly exitStatus: number;
  readonly exitedAt: { readonly seconds: bigint; readonly nanos: number };
}

export function encodeDeleteResponse(r: DeleteResult): Uint8Array {
  const w = new BinaryWriter();
  if (r.pid !== 0) w.tag(1, WireType.Varint).uint32(r.pid);
  if (r.exitStatus !== 0) w.tag(2, WireType.Varint).uint32(r.exitStatus);
  w.tag(3, WireType.LengthDelimited).fork();
  if (r.exitedAt.seconds !== 0n) w.tag(1, WireType.Varint).int64(r.exitedAt.seconds);
  if (r.exitedAt.nanos !== 0) w.tag(2, WireType.Varint).int32(r.exitedAt.nanos);
  w.join();
  return w.finish();
}

/** The current wall-clock time as a Timestamp's fields (millisecond resolution). */
export function epochNow(): DeleteResult['exitedAt'] {
  const ms = Date.now();
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}
