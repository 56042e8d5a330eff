/**
 * How `start` joins a running shim of its group, and how that shim answers. Probing the socket
 * (as the Go shim does) is not enough once one process serves many tasks: between `start`
 * seeing a live shim and containerd's Create arriving, that shim may handle the Shutdown of its
 * last task and exit, and the new task's Create would find no one. So `start` calls
 * `outrigger.shim.v1.Group/Join{id}` over ttrpc; a shim that accepts promises to wait for that
 * task's Create (for a while, see ../shim-lifetime.ts) before it may exit, and one already on
 * its way out answers Unavailable, after which `start` waits for it to go and starts a new one.
 * Written with the frame codec and the wire reader/writer only: `start` runs for every task and
 * must not build schema registries.
 *   JoinRequest: 1 id string. Response payload: empty.
 */
import net from 'node:net';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { decodeHeader, encodeFrame, HEADER_SIZE, MessageType } from '../../../src/ttrpc/frame.ts';

export const GROUP_SERVICE = 'outrigger.shim.v1.Group';
export const JOIN_METHOD = 'Join';

/** gRPC Unimplemented (shim-protocol.md §1.6): the shim predates the Group service. */
const UNIMPLEMENTED = 12;

/**
 * - joined: a live shim accepted the task (or an older build of ours without the Group service
 *   answered Unimplemented: it is alive, and behaves as the Go shim does);
 * - leaving: the shim is shutting down; wait for its socket to go, then start a new one;
 * - absent: nothing accepts connections on the path (no file, or a stale socket).
 */
export type JoinResult = 'joined' | 'leaving' | 'absent';

export function encodeJoinRequest(id: string): Uint8Array {
  return new BinaryWriter().tag(1, WireType.LengthDelimited).string(id).finish();
}

export function decodeJoinRequest(payload: Uint8Array): string {
  const r = new BinaryReader(payload);
  let id = '';
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) id = r.string();
    else r.skip(wireType, field);
  }
  return id;
}

function encodeJoinCall(id: string): Uint8Array {
  // ttrpc.Request: 1 service, 2 method, 3 payload (shim-protocol.md §1.4).
  const request = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string(GROUP_SERVICE)
    .tag(2, WireType.LengthDelimited)
    .string(JOIN_METHOD)
    .tag(3, WireType.LengthDelimited)
    .bytes(encodeJoinRequest(id))
    .finish();
  return encodeFrame({ streamId: 1, type: MessageType.request, flags: 0, payload: request });
}

/** The status code of a ttrpc.Response (1 status{1 code}, 2 payload); 0 when it has none. */
export function responseCode(data: Uint8Array): number {
  const r = new BinaryReader(data);
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      const status = new BinaryReader(r.bytes());
      while (status.pos < status.len) {
        const [f, wt] = status.tag();
        if (f === 1 && wt === WireType.Varint) return status.int32();
        status.skip(wt, f);
      }
      return 0;
    }
    r.skip(wireType, field);
  }
  return 0;
}

/**
 * Asks the shim on `socket` to take task `id`. A shim that accepts the connection but does not
 * answer within `timeoutMs` (a loaded machine, a daemon still loading its service) is alive, and
 * counts as joined, as a successful probe does for the Go shim.
 */
export function joinGroup(socket: string, id: string, timeoutMs = 10_000): Promise<JoinResult> {
  return new Promise((resolve) => {
    let settled = false;
    let connected = false;
    let buffered = new Uint8Array();
    const s = net.createConnection({ path: socket });
    const finish = (r: JoinResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(connected ? 'joined' : 'absent'), timeoutMs);
    s.once('connect', () => {
      connected = true;
      s.write(encodeJoinCall(id));
    });
    s.on('data', (chunk: Buffer) => {
      const next = new Uint8Array(buffered.length + chunk.length);
      next.set(buffered);
      next.set(chunk, buffered.length);
      buffered = next;
      if (buffered.length < HEADER_SIZE) return;
      const header = decodeHeader(buffered);
      if (buffered.length < HEADER_SIZE + header.length) return;
      if (header.type !== MessageType.response) return finish('leaving');
      let code: number;
      try {
        code = responseCode(buffered.subarray(HEADER_SIZE, HEADER_SIZE + header.length));
      } catch {
        return finish('leaving');
      }
      // Unavailable (14) is the shim saying it is leaving; any other refusal is treated alike.
      finish(code === 0 || code === UNIMPLEMENTED ? 'joined' : 'leaving');
    });
    // Refused or missing: nothing serves the path. Closed after connecting without an answer:
    // the shim went away under us.
    s.once('error', () => finish(connected ? 'leaving' : 'absent'));
    s.once('close', () => finish(connected ? 'leaving' : 'absent'));
  });
}
