/**
 * Waiting for the client's reader on an output FIFO before the process is created.
 *
 * ctr, the containerd client and CRI open their stdout/stderr readers asynchronously (a
 * goroutine's blocking open) and, when deleting the process, cancel any open still in flight
 * before waiting for the output: a reader whose open had not returned by then is closed and the
 * process's output is lost, though it sat in the FIFO. The Go shim cannot lose it that way: it
 * opens its writer in blocking mode during Create, so Create returns only once the client is
 * inside its open. Our own O_RDWR end never blocks, so without this wait a short process on a
 * loaded node could run, exit and be deleted before the client's open goroutine had run (the
 * soak's "exit code right, stdout empty").
 *
 * An O_WRONLY|O_NONBLOCK open fails with ENXIO exactly while no reader is in the FIFO; a reader
 * blocked in open(2) already counts. It is polled, so the event loop never blocks, with a bound,
 * so a client that never reads cannot hang Create: after the deadline the process runs anyway
 * (our O_RDWR end keeps its output until read, as before) and the caller logs it.
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const { O_WRONLY, O_NONBLOCK, O_NOCTTY } = fs.constants;

/** How long Create waits for a client's reader before running the process without it. */
export const FIFO_READER_TIMEOUT_MS = 5_000;

const FIRST_POLL_MS = 1;
const MAX_POLL_MS = 20;

/** Our probe writer on a FIFO whose reader is there, or why there is none. */
type Probe = { readonly fd: number } | 'no-reader' | 'not-a-fifo';

function probe(path: string): Probe {
  try {
    if (!fs.statSync(path).isFIFO()) return 'not-a-fifo';
    return { fd: fs.openSync(path, O_WRONLY | O_NONBLOCK | O_NOCTTY) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENXIO') return 'no-reader';
    // Missing path, permissions, …: FifoIo's own open reports it with context.
    return 'not-a-fifo';
  }
}

export interface FifoReaders {
  /** FIFOs still without a reader at the deadline. */
  readonly missing: readonly string[];
  /**
   * Closes the probe writers. Call it only once the shim's own ends are open: the probe is what
   * completed the client's open, and with no writer left the client would read EOF at once.
   */
  release(): void;
}

/**
 * Resolves once every FIFO among `paths` has a reader, or at the deadline. Paths that are not
 * FIFOs (regular files, empty strings) are not waited for.
 */
export async function waitForFifoReaders(paths: readonly string[], timeoutMs = FIFO_READER_TIMEOUT_MS): Promise<FifoReaders> {
  const held: number[] = [];
  const check = (p: string): boolean => {
    const r = probe(p);
    if (r === 'no-reader') return true;
    if (r !== 'not-a-fifo') held.push(r.fd);
    return false;
  };
  let waiting = [...new Set(paths.filter((p) => p !== ''))].filter(check);
  const deadline = Date.now() + timeoutMs;
  let pause = FIRST_POLL_MS;
  while (waiting.length > 0 && Date.now() < deadline) {
    await sleep(Math.min(pause, Math.max(0, deadline - Date.now())));
    pause = Math.min(pause * 2, MAX_POLL_MS);
    waiting = waiting.filter(check);
  }
  return {
    missing: waiting,
    release: () => {
      for (const fd of held.splice(0)) fs.closeSync(fd);
    },
  };
}
