/**
 * The verifying unpack's inflate worker, sized here and started as early as a process can know it
 * will run one unpack (the CLI, when its arguments are `estargz unpack`).
 *
 * Why a module of its own: the worker's boot (a Node isolate, its code, libdeflate's probes) is
 * ~20 ms, and until it is done nothing can be inflated. Started from unpack.ts it began only once
 * that module's whole graph (crypto, the tar walker, the TOC parser and checker) had loaded, ~13
 * ms after the CLI's entry; this module pulls in just the worker's own code, so the boot overlaps
 * all of that and the CLI's parsing.
 */
import { type InflateLimits, InflateWorker } from './inflate-worker.ts';

/** Bytes of output held back until the layer is judged: the tar's two end-of-archive blocks. */
export const TAIL_HOLD = 1024;
/** Swap output buffers before a step would have less room than this (tiny inflate steps cost per call). */
export const MIN_ROOM = 64 * 1024;

/** Input slots of the inflate worker (1 MiB: the processor's read size; larger chunks are split). */
const INPUT_BYTES = 1 << 20;
const INPUT_SLOTS = 9;
/** Of those, the newest kept for reading the TOC ahead (toc-ahead.ts): a TOC member of 63k entries is 3.4 MB. */
const RETAINED_SLOTS = 5;
/**
 * Output buffers of the inflate worker: one being filled, the rest being walked and written.
 * 8 MiB, so that a whole 4 MiB chunk member fits the room left in one (libdeflate inflates a
 * member in one piece, libdeflate.ts); a buffer with less than WHOLE_ROOM left is swapped first.
 */
const WORKER_STAGE_BUFFERS = 4;
const WORKER_STAGE_BYTES = 8 << 20;
const WHOLE_ROOM = (4 << 20) + (256 << 10);
/**
 * The worker reports output every 1 MiB rather than per full 8 MiB buffer: hashing and writing
 * follow the inflate closely, so less is left for after the end of the input.
 */
const REPORT_BYTES = 1 << 20;

const WORKER_LIMITS: InflateLimits = {
  outputBuffers: WORKER_STAGE_BUFFERS,
  outputBytes: WORKER_STAGE_BYTES,
  wholeRoom: WHOLE_ROOM,
  inputSlots: INPUT_SLOTS,
  inputBytes: INPUT_BYTES,
  retainedSlots: RETAINED_SLOTS,
  tailHold: TAIL_HOLD,
  minRoom: MIN_ROOM,
  reportBytes: REPORT_BYTES,
};

let prestarted: InflateWorker | undefined;

/**
 * Readies a process that is known to be about to run one unpack: the inflate worker boots now,
 * while the rest of the process loads. An unused worker is unref'd: it does not keep the process
 * alive (a usage error, a zstd layer).
 */
export function prepareUnpackProcess(): void {
  prestarted ??= new InflateWorker(WORKER_LIMITS);
}

/** The prestarted worker, or a new one: each serves one unpack. */
export function takeInflateWorker(): InflateWorker {
  const worker = prestarted ?? new InflateWorker(WORKER_LIMITS);
  prestarted = undefined;
  return worker;
}
