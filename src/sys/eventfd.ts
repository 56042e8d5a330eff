/**
 * eventfd(2): a kernel counter behind a file descriptor. cgroup v1 memory OOM notification
 * registers one through cgroup.event_control and the kernel adds 1 per OOM event. We create it
 * non-blocking, so reading an unsignalled counter returns "nothing yet" instead of parking a
 * thread of libuv's pool.
 */
import fs from 'node:fs';
import { check, libc } from './libc.ts';

const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;

/** A new eventfd with counter 0, close-on-exec and non-blocking; the caller closes it. */
export function createEventFd(): number {
  return check(libc().eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), 'eventfd', '0, EFD_CLOEXEC|EFD_NONBLOCK');
}

/** Reads and resets the counter: its value, or null if it is 0 (EAGAIN). */
export function readEventCounter(fd: number): bigint | null {
  const value = Buffer.alloc(8);
  let read: number;
  try {
    read = fs.readSync(fd, value, 0, 8, null);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return null;
    throw new Error(`read(eventfd ${fd}) failed: ${(err as Error).message}`, { cause: err });
  }
  if (read !== 8) throw new Error(`read(eventfd ${fd}) returned ${read} bytes, expected 8`);
  return value.readBigUInt64LE(0);
}

/** Adds to the counter (what the kernel does on an event; used to test the reader). */
export function addToEventCounter(fd: number, amount: bigint): void {
  if (amount <= 0n || amount >= 0xffffffffffffffffn) throw new RangeError(`eventfd increment must be 1..2^64-2, got ${amount}`);
  const value = Buffer.alloc(8);
  value.writeBigUInt64LE(amount, 0);
  const written = fs.writeSync(fd, value, 0, 8, null);
  if (written !== 8) throw new Error(`write(eventfd ${fd}) wrote ${written} bytes, expected 8`);
}
