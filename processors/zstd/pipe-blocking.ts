/**
 * Puts a stdin/stdout pipe back into blocking mode (fcntl F_SETFL without O_NONBLOCK), so io.ts
 * can keep reading and writing it with read(2)/write(2) in the thread pool.
 *
 * O_NONBLOCK belongs to the open file description, and Node sets it on fd 0/1 as soon as
 * anything touches process.stdin/stdout: the CLI's start-up does (src/cli/main.ts listens for
 * EPIPE on process.stdout), which made every write after the first EAGAIN go through
 * process.stdout, i.e. write(2) on the main thread (seen with strace: 227 of 239 writes of a
 * 194 MB unpack on the main thread). Our end of the pipe is normally ours alone (containerd and
 * shells make a pipe per child; the other end is a separate description), so clearing the flag
 * changes nothing for anyone else; a parent that hands us its own stdout sees blocking mode while
 * we run (Node puts back the flags fd 0-2 had at start-up when it exits). Nothing writes to
 * process.stdout in the streaming tools. Best effort: without node:ffi, or when fd is not a pipe,
 * io.ts still hands over to process.stdin/stdout on EAGAIN.
 */
import fs from 'node:fs';
import { bindFcntl } from './fcntl.ts';

const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;

/** True when `fd` is a pipe in blocking mode afterwards. */
export function makePipeBlocking(fd: number): boolean {
  try {
    if (!fs.fstatSync(fd).isFIFO()) return false;
  } catch {
    return false;
  }
  const call = bindFcntl();
  if (!call) return false;
  const flags = call(fd, F_GETFL, 0);
  if (flags < 0) return false;
  if ((flags & O_NONBLOCK) === 0) return true;
  return call(fd, F_SETFL, flags & ~O_NONBLOCK) === 0;
}
