/**
 * Who is on the other end of a unix socket (getsockopt SO_PEERCRED): the pid, uid and gid of
 * the peer as of connect(). The ttrpc server uses it to refuse clients with another uid.
 */
import type net from 'node:net';
import { assertFd, check, libc } from './libc.ts';
import { socketFd } from './socket-fd.ts';

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
/** struct ucred { pid_t pid; uid_t uid; gid_t gid; } */
const UCRED_SIZE = 12;

export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

export function peerCredentials(fd: number): PeerCredentials {
  assertFd(fd, 'peerCredentials');
  const ucred = Buffer.alloc(UCRED_SIZE);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(UCRED_SIZE, 0);
  check(libc().getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ucred, length), 'getsockopt', `fd ${fd}, SOL_SOCKET, SO_PEERCRED`);
  const got = length.readUInt32LE(0);
  if (got !== UCRED_SIZE) throw new Error(`getsockopt(fd ${fd}, SO_PEERCRED) returned ${got} bytes, expected ${UCRED_SIZE}`);
  return { pid: ucred.readInt32LE(0), uid: ucred.readUInt32LE(4), gid: ucred.readUInt32LE(8) };
}

/** The same for a connected Node socket (e.g. one a net.Server accepted). */
export function peerCredentialsOfSocket(socket: net.Socket): PeerCredentials {
  return peerCredentials(socketFd(socket));
}
