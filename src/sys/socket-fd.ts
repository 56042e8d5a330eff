/**
 * The file descriptor under a Node socket or server. Node has no public API for it: the fd is
 * a property of the private libuv handle wrapper (`_handle.fd`, -1 or absent when there is no
 * fd yet, e.g. before 'connect' or after 'close'). This is the only place that reaches into
 * `_handle`; if Node ever renames it, this is the function to change. The fd stays owned by
 * the socket: use it for getsockopt/recvmsg, never close it yourself.
 */
import type net from 'node:net';

interface WithHandle {
  _handle?: { fd?: unknown } | null;
}

export function socketFd(socket: net.Socket | net.Server): number {
  const fd = (socket as unknown as WithHandle)._handle?.fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw new Error(`socket has no file descriptor (handle fd: ${String(fd)}); is it connected/listening and not closed?`);
  }
  return fd;
}
