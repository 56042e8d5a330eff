/**
 * Bytes waiting unread in a pipe or FIFO (ioctl FIONREAD). The shim asks before it lets go of
 * its own end of a stdout FIFO: bytes still in a FIFO that nobody has opened for reading are
 * discarded by the kernel when the last fd closes.
 */
import { assertFd, check, libc } from './libc.ts';

const FIONREAD = 0x541bn;

export function pipeUnread(fd: number): number {
  assertFd(fd, 'pipeUnread');
  const count = Buffer.alloc(4);
  check(libc().ioctl(fd, FIONREAD, count), 'ioctl', `fd ${fd}, FIONREAD`);
  return count.readInt32LE(0);
}
