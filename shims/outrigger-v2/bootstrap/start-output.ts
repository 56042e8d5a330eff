/**
 * What `start` prints (shim-protocol.md §2.5): the bare `unix://` address, which containerd 1.6
 * through 2.3 accept and which selects containerd.task.v2.Task. No newline, nothing else. Apart
 * from ./handshake.ts so a `start` with nothing on stdin loads no protobuf code.
 */
export function startOutput(address: string): Uint8Array {
  if (!address.startsWith('unix://')) throw new Error(`shim start: address ${address} lacks unix:// (containerd would dial an abstract socket)`);
  return new TextEncoder().encode(address);
}
