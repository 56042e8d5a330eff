/**
 * Passing file descriptors over unix sockets (SCM_RIGHTS), e.g. the pty master that runc
 * sends to --console-socket. The structs are laid out by hand for LP64 Linux:
 *   struct msghdr  { void *name; u32 namelen; /4 pad/ iovec *iov; size_t iovlen;
 *                    void *control; size_t controllen; int flags; }       56 bytes
 *   struct iovec   { void *base; size_t len; }                            16 bytes
 *   struct cmsghdr { size_t len; int level; int type; u8 data[]; }         16-byte header
 */
import fs from 'node:fs';
import os from 'node:os';
import { assertFd, check, checkSize, ffi, lastErrno, libc, SysCallError } from './libc.ts';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CTRUNC = 0x8;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const EAGAIN = os.constants.errno.EAGAIN;

const MSGHDR_SIZE = 56;
const CMSG_HEADER = 16;
const cmsgAlign = (n: number): number => (n + 7) & ~7;
const cmsgSpace = (n: number): number => CMSG_HEADER + cmsgAlign(n);

/** More than any sender of ours passes; extra room so a surprise is reported, not truncated. */
const MAX_FDS = 16;
/** runc sends the pty's path (e.g. "/dev/pts/3") as the payload. */
const MAX_PAYLOAD = 4096;

export interface ReceivedFd {
  /** The new descriptor, close-on-exec, owned by the caller. */
  readonly fd: number;
  /** The bytes sent along with it (runc: the pty slave's path). */
  readonly payload: Buffer;
}

interface Message {
  readonly msghdr: Buffer;
  readonly iov: Buffer;
  readonly data: Buffer;
  readonly control: Buffer;
}

/** Buffers for one msghdr; kept together so none is collected while the call uses it. */
function message(data: Buffer, control: Buffer): Message {
  const { getRawPointer } = ffi();
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(getRawPointer(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const msghdr = Buffer.alloc(MSGHDR_SIZE);
  msghdr.writeBigUInt64LE(getRawPointer(iov), 16);
  msghdr.writeBigUInt64LE(1n, 24);
  msghdr.writeBigUInt64LE(getRawPointer(control), 32);
  msghdr.writeBigUInt64LE(BigInt(control.length), 40);
  return { msghdr, iov, data, control };
}

function receivedFds(control: Buffer, controlLength: number): number[] {
  const fds: number[] = [];
  let offset = 0;
  while (offset + CMSG_HEADER <= controlLength) {
    const length = Number(control.readBigUInt64LE(offset));
    if (length < CMSG_HEADER) break;
    const level = control.readInt32LE(offset + 8);
    const type = control.readInt32LE(offset + 12);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let at = offset + CMSG_HEADER; at + 4 <= offset + length; at += 4) fds.push(control.readInt32LE(at));
    }
    offset += cmsgAlign(length);
  }
  return fds;
}

function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
    } catch {
      // Already failing; the error we throw says why.
    }
  }
}

/**
 * One non-blocking recvmsg on a connected unix stream socket: the descriptor that arrived, or
 * null if nothing is there yet (EAGAIN). Throws if the peer closed without sending one, or
 * sent data without a descriptor, or more than one descriptor.
 */
export function receiveFd(socketFd: number): ReceivedFd | null {
  assertFd(socketFd, 'receiveFd');
  const msg = message(Buffer.alloc(MAX_PAYLOAD), Buffer.alloc(cmsgSpace(4 * MAX_FDS)));
  const flags = MSG_DONTWAIT | MSG_CMSG_CLOEXEC;
  const received = Number(libc().recvmsg(socketFd, msg.msghdr, flags));
  if (received === -1) {
    const errno = lastErrno();
    if (errno === EAGAIN) return null;
    throw new SysCallError('recvmsg', `fd ${socketFd}, MSG_DONTWAIT|MSG_CMSG_CLOEXEC`, errno);
  }
  const fds = receivedFds(msg.control, Number(msg.msghdr.readBigUInt64LE(40)));
  const msgFlags = msg.msghdr.readInt32LE(48);
  const where = `recvmsg(fd ${socketFd})`;
  if (msgFlags & MSG_CTRUNC) {
    closeAll(fds);
    throw new Error(`${where}: control data truncated (more than ${MAX_FDS} descriptors sent?)`);
  }
  if (received === 0 && fds.length === 0) throw new Error(`${where}: peer closed the connection without sending a file descriptor`);
  if (fds.length !== 1) {
    closeAll(fds);
    throw new Error(`${where}: expected 1 file descriptor (SCM_RIGHTS), got ${fds.length} with ${received} bytes of data`);
  }
  return { fd: fds[0]!, payload: Buffer.from(msg.data.subarray(0, received)) };
}

/** Sends `fd` over a connected unix socket with `payload` (at least one byte: a stream socket
 * carries no control data on an empty message). Non-blocking; throws EAGAIN if it is full. */
export function sendFd(socketFd: number, fd: number, payload: Buffer = Buffer.from([0])): void {
  assertFd(socketFd, 'sendFd socket');
  assertFd(fd, 'sendFd fd');
  if (payload.length === 0) throw new RangeError('sendFd: payload must not be empty');
  const control = Buffer.alloc(cmsgSpace(4));
  control.writeBigUInt64LE(BigInt(CMSG_HEADER + 4), 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  control.writeInt32LE(fd, CMSG_HEADER);
  const msg = message(Buffer.from(payload), control);
  const sent = checkSize(
    libc().sendmsg(socketFd, msg.msghdr, MSG_DONTWAIT | MSG_NOSIGNAL),
    'sendmsg',
    `fd ${socketFd}, SCM_RIGHTS [${fd}], ${payload.length} bytes`,
  );
  if (sent !== payload.length) throw new Error(`sendmsg(fd ${socketFd}): sent ${sent} of ${payload.length} bytes`);
}

/** A connected pair of unix stream sockets, both close-on-exec and blocking; caller closes. */
export function socketPair(): [number, number] {
  const fds = Buffer.alloc(8);
  check(libc().socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 'socketpair', 'AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC');
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}
