/**
 * A late reader of a FIFO: opened non-blocking (so it never waits for a writer) and read until
 * no writer is left. Reads are polled rather than left to epoll: a FIFO whose writers were all
 * gone before it was opened never reports a hang-up to epoll, so an event-driven reader would
 * wait forever for an end that has already come. Resolves with what was read and whether the
 * end came within `timeoutMs` (a writer that never lets go, e.g. a shim that keeps its end of
 * a drained FIFO, is reported rather than waited for).
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const POLL_MS = 20;

export async function readFifoToEnd(file: string, timeoutMs: number): Promise<{ text: string; ended: boolean }> {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(64 * 1024);
  const deadline = Date.now() + timeoutMs;
  const result = (ended: boolean) => ({ text: Buffer.concat(chunks).toString('utf8'), ended });
  try {
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(fd, buf);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        // Empty, and a writer still has it open.
        if (Date.now() > deadline) return result(false);
        await sleep(POLL_MS);
        continue;
      }
      if (n === 0) return result(true);
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
  } finally {
    fs.closeSync(fd);
  }
}
