/**
 * The verifying unpack's inflate thread: gzip members are parsed and inflated (CRC32 and ISIZE
 * checked) on a worker, into output buffers in shared memory; the calling thread walks the tar,
 * hashes and writes those buffers in place.
 *
 * Why this split: inflating is the one serial step plain gunzip also has (~350 ms of the 194 MB
 * bench layer with zlib, ~230 ms with libdeflate), and everything verification adds (tar walk,
 * sha256 of every payload byte, the TOC check) is another ~200 ms on one thread. With the walk
 * and the hashing on the main thread and the inflate here, the two threads carry about the same
 * load, and they talk once per output buffer: a message naming the buffer, how much of it is
 * final, and where gzip members start in it (the tar walker needs those positions). The earlier
 * split (inflate on the main thread, a hashing worker fed per-file records) spent as much CPU on
 * records, messages and garbage as on hashing.
 *
 * The held tail (TAIL_HOLD, the tar's end-of-archive blocks) stays here as in the single-thread
 * path: when a buffer is full, all of it but its newest `tailHold` bytes is reported, and those
 * bytes move to the start of the next buffer. So nothing the caller may write ever includes the
 * last `tailHold` bytes decoded so far; the final buffer is reported only after the input ended
 * and every member checked out.
 *
 * A worker of the single-executable binary has no module files to load, so the worker's code is
 * source text: `inflateWorkerMain`, gzip-members.ts's `defineGzipMembers` and libdeflate.ts's
 * loader and bindings, all written to refer to nothing outside themselves, stringified.
 */
import { Worker } from 'node:worker_threads';
import { bindFastCrc32, bindWholeInflate, loadFfiQuietly } from './libdeflate.ts';
import { defineGzipMembers } from './gzip-members.ts';
import { Wakeup } from '../../src/streams/wakeup.ts';

export interface InflateLimits {
  /** Output buffers (shared) and their size. */
  outputBuffers: number;
  outputBytes: number;
  /** Input slots (shared) and their size; input chunks are copied in, split when larger. */
  inputSlots: number;
  inputBytes: number;
  /**
   * The newest slots kept unchanged after the worker is done with them, so the end of the input
   * can be read again (inputFrom()); the rest of the slots carry input to the worker.
   */
  retainedSlots: number;
  /** Bytes never reported until the end (the held tail). */
  tailHold: number;
  /**
   * With libdeflate: output room wanted before a member is inflated whole (a buffer with less is
   * swapped first), and the input wanted past its start (plus a little). An eStargz chunk is 4 MiB.
   */
  wholeRoom: number;
  /** A buffer with less room than this is swapped after an input chunk (tiny inflate steps cost per call). */
  minRoom: number;
  /** Output reported as soon as this much of a buffer is final, before the buffer is full. */
  reportBytes: number;
}

/**
 * Part of the output that is final: `buffer[start..end)`, following the previous range in the
 * stream. A buffer is reported in several ranges as it fills (each starting where the previous
 * one of that buffer ended, the first at 0); the one with `last` set is its final range.
 */
export interface FilledRange {
  /** Hand back with release() once done with the bytes of its last range. */
  index: number;
  buffer: Buffer;
  start: number;
  end: number;
  last: boolean;
  /** Member starts in or at the end of this range: flat pairs [compressed offset, output offset]. */
  boundaries: number[];
}

export interface InflateEnd {
  /** The last buffer: `buffer[start..end)` follows the last range; it ends with the held tail. */
  last: FilledRange;
  members: number;
  compressedBytes: number;
  lastMember: { offset: number; compressedLength: number; uncompressedLength: number };
  lastExtra: Buffer | undefined;
}

/** A gzip structure or CRC failure found by the worker (the same text the in-thread decoder gives). */
export class InflateWorkerError extends Error {
  /** Compressed offset, or -1 when the worker itself failed. */
  readonly offset: number;
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'InflateWorkerError';
    this.offset = offset;
  }
}

interface WorkerSetup {
  outputs: SharedArrayBuffer[];
  inputs: SharedArrayBuffer[];
  tailHold: number;
  minRoom: number;
  wholeRoom: number;
  reportBytes: number;
}

/** Input wanted past a member body's start before libdeflate tries it (compressed chunk + slack). */
const WHOLE_INPUT_SLACK = 64 * 1024;

interface DoneMessage {
  final: number;
  /** Where the final buffer's unreported bytes start, and its fill. */
  reported: number;
  fill: number;
  boundaries: number[];
  members: number;
  compressedBytes: number;
  lastMember: [number, number, number];
  lastExtra: Uint8Array | undefined;
}

/**
 * The worker's code. Messages in: { input: slot, len } (compressed bytes in that input slot),
 * { free: index } (an output buffer may be reused), { end: true }. Messages out:
 * { inputFree: slot }, { filled: index, start, end, last, boundaries }, { done: DoneMessage },
 * { failure: { message, offset } }. Runs only as source text: no references outside itself.
 */
export function inflateWorkerMain(
  req: (id: string) => unknown,
  defineMembers: typeof defineGzipMembers,
  loadFfi: typeof loadFfiQuietly,
  bindCrc32: typeof bindFastCrc32,
  bindWhole: typeof bindWholeInflate,
  wholeInputSlack: number,
): void {
  const { parentPort, workerData } = req('node:worker_threads') as typeof import('node:worker_threads');
  const zlib = req('node:zlib') as typeof import('node:zlib');
  const ffi = loadFfi();
  const { GzipMemberDecoder, GzipFormatError } = defineMembers(zlib, bindCrc32(zlib, ffi));
  const setup = workerData as WorkerSetup;
  const port = parentPort!;
  const outputs = setup.outputs.map((b) => Buffer.from(b));
  const inputs = setup.inputs.map((b) => Buffer.from(b));
  const { tailHold, minRoom, wholeRoom, reportBytes } = setup;
  const whole = bindWhole(zlib, ffi);
  const wholeInput = wholeRoom + wholeInputSlack;
  /**
   * Compressed input, contiguous (a whole member must be in one piece for libdeflate): slots are
   * copied in as they arrive and handed back at once. Room for what the decoder may wait for plus
   * one more slot. (Four times that measured slower, 1.5 s against 1.8 s of this thread's CPU on
   * the /usr bench layer: the input stays in cache better than it costs to move the rest.)
   */
  const arena = Buffer.allocUnsafeSlow(wholeInput + 2 * Math.max(...inputs.map((b) => b.length)));
  let arenaStart = 0;
  let arenaEnd = 0;
  const free: number[] = [];
  for (let i = outputs.length - 1; i >= 1; i--) free.push(i);
  let current = 0;
  const space = { buffer: outputs[0]!, fill: 0 };
  /** Output offset of space.buffer[0]. */
  let base = 0;
  /** Member starts not yet reported: flat [compressed offset, output offset]. */
  let boundaries: number[] = [];
  let lastExtra: Buffer | undefined;
  let lastOffset = 0;
  let lastLength = 0;
  let lastOut = 0;
  const decoder = new GzipMemberDecoder({
    memberStart(offset, extra) {
      boundaries.push(offset, base + space.fill);
      lastExtra = extra;
    },
    data() {},
    memberEnd(offset, compressedLength, uncompressedLength) {
      lastOffset = offset;
      lastLength = compressedLength;
      lastOut = uncompressedLength;
    },
  });
  decoder.useOutput(space);
  if (whole) decoder.useWholeInflate(whole, wholeRoom, wholeInput);
  const queue: Array<{ slot: number; len: number }> = [];
  let ending = false;
  let stopped = false;

  /** Where the current buffer's unreported bytes start. */
  let reported = 0;

  /** Reports current[reported..end): final output and the member starts up to its end. */
  function report(end: number, last: boolean): void {
    let k = 0;
    while (k < boundaries.length && boundaries[k + 1]! <= base + end) k += 2;
    const sent = boundaries.slice(0, k);
    boundaries = boundaries.slice(k);
    port.postMessage({ filled: current, start: reported, end, last, boundaries: sent });
    reported = end;
  }

  /**
   * Reports what is final of the current buffer once it is reportBytes past the last report:
   * the caller hashes and writes while this buffer fills, rather than all 8 MiB when it is full,
   * and the last of the layer is not left to do after the end of the input.
   */
  function reportProgress(): void {
    const end = space.fill - tailHold;
    if (end - reported >= reportBytes) report(end, false);
  }

  /** Reports all of the current buffer but its newest tailHold bytes and continues in a free one; false if none is free. */
  function rotate(): boolean {
    const fill = space.fill;
    if (fill <= tailHold) return true;
    const next = free.pop();
    if (next === undefined) return false;
    outputs[current]!.copy(outputs[next]!, 0, fill - tailHold, fill);
    const end = fill - tailHold;
    report(end, true);
    base += end;
    current = next;
    reported = 0;
    space.buffer = outputs[next]!;
    space.fill = tailHold;
    return true;
  }

  /** Moves queued input slots into the arena while they fit, handing each slot back. */
  function takeInput(): void {
    while (queue.length > 0) {
      const item = queue[0]!;
      if (arenaEnd + item.len > arena.length && arenaStart > 0) {
        arena.copy(arena, 0, arenaStart, arenaEnd);
        arenaEnd -= arenaStart;
        arenaStart = 0;
      }
      if (arenaEnd + item.len > arena.length) return;
      inputs[item.slot]!.copy(arena, arenaEnd, 0, item.len);
      arenaEnd += item.len;
      queue.shift();
      port.postMessage({ inputFree: item.slot });
    }
  }

  /**
   * The decoder asked for room and no buffer was free: the rotation is owed before the decoder
   * runs again (pushed first, it would take the room as given and stream the member through zlib).
   */
  let rotationOwed = false;
  function rotateOrOwe(): boolean {
    rotationOwed = !rotate();
    return !rotationOwed;
  }

  /** Runs until it needs more input or a free output buffer (then a message resumes it). */
  function pump(): void {
    if (stopped) return;
    try {
      if (rotationOwed && !rotateOrOwe()) return;
      for (;;) {
        takeInput();
        const last = ending && queue.length === 0;
        if (last) decoder.lastInput();
        if (arenaStart < arenaEnd) {
          arenaStart += decoder.push(arena.subarray(arenaStart, arenaEnd));
          reportProgress();
          if (arenaStart === arenaEnd) {
            arenaStart = 0;
            arenaEnd = 0;
            if (space.buffer.length - space.fill < minRoom && !rotateOrOwe()) return;
          } else if (decoder.wantsInput) {
            if (queue.length === 0) return;
            if (arenaEnd - arenaStart + queue[0]!.len > arena.length) throw new Error('internal: the inflate worker input arena is too small');
          } else if (!rotateOrOwe()) {
            return;
          }
          continue;
        }
        if (!last) return;
        while (!decoder.end()) {
          if (!rotateOrOwe()) return;
        }
        stopped = true;
        const done: DoneMessage = {
          final: current,
          reported,
          fill: space.fill,
          boundaries,
          members: decoder.members,
          compressedBytes: decoder.compressedBytes,
          lastMember: [lastOffset, lastLength, lastOut],
          lastExtra,
        };
        port.postMessage({ done });
        return;
      }
    } catch (err) {
      stopped = true;
      const e = err as Error;
      port.postMessage({ failure: { message: e.message, offset: e instanceof GzipFormatError ? e.offset : -1 } });
    }
  }

  port.on('message', (m: { input?: number; len?: number; free?: number; end?: boolean }) => {
    if (m.input !== undefined) queue.push({ slot: m.input, len: m.len! });
    else if (m.free !== undefined) free.push(m.free);
    else if (m.end) ending = true;
    pump();
  });
}

const WORKER_SOURCE = `(${inflateWorkerMain.toString()})(require, ${defineGzipMembers.toString()}, ${loadFfiQuietly.toString()}, ${bindFastCrc32.toString()}, ${bindWholeInflate.toString()}, ${WHOLE_INPUT_SLACK});`;

/**
 * The calling thread's side. The worker thread boots as soon as this is constructed, which may
 * be well before the input is known (unpack-prestart.ts); `start()` then names the handler
 * that gets each final range in stream order, from the message handler, and must come before the
 * first push(). A range's buffer goes back to the worker with release(). push() and end() reject
 * once the worker failed (InflateWorkerError for bad input).
 */
export class InflateWorker {
  private readonly worker: Worker;
  private readonly outputs: Buffer[];
  private readonly inputs: Buffer[];
  private readonly freeInputs: number[] = [];
  /** Slots in input order since the oldest retained one: compressed offset, length, whether the worker is done. */
  private readonly recent: Array<{ slot: number; start: number; len: number; consumed: boolean }> = [];
  private readonly retained: number;
  private pushed = 0;
  private onFilled: ((range: FilledRange) => void) | undefined;
  private failure: Error | undefined;
  private done: DoneMessage | undefined;
  private readonly wakeup = new Wakeup();
  private closed = false;

  constructor(limits: InflateLimits) {
    this.retained = limits.retainedSlots;
    const outputs = Array.from({ length: limits.outputBuffers }, () => new SharedArrayBuffer(limits.outputBytes));
    const inputs = Array.from({ length: limits.inputSlots }, () => new SharedArrayBuffer(limits.inputBytes));
    this.outputs = outputs.map((b) => Buffer.from(b));
    this.inputs = inputs.map((b) => Buffer.from(b));
    for (let i = inputs.length - 1; i >= 0; i--) this.freeInputs.push(i);
    const workerData: WorkerSetup = { outputs, inputs, tailHold: limits.tailHold, minRoom: limits.minRoom, wholeRoom: limits.wholeRoom, reportBytes: limits.reportBytes };
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    this.worker.on('message', (m: { filled?: number; start?: number; end?: number; last?: boolean; boundaries?: number[]; inputFree?: number; done?: DoneMessage; failure?: { message: string; offset: number } }) => {
      if (this.closed) return;
      if (m.filled !== undefined) {
        try {
          if (!this.onFilled) throw new Error('internal: the inflate worker reported output before start()');
          this.onFilled({ index: m.filled, buffer: this.outputs[m.filled]!, start: m.start!, end: m.end!, last: m.last!, boundaries: m.boundaries! });
        } catch (err) {
          this.fail(err as Error);
        }
      } else if (m.inputFree !== undefined) {
        this.inputConsumed(m.inputFree);
        this.wakeup.notify();
      } else if (m.done) {
        this.done = m.done;
        this.wakeup.notify();
      } else if (m.failure) {
        this.fail(new InflateWorkerError(m.failure.message, m.failure.offset));
      }
    });
    this.worker.on('error', (err: Error) => this.fail(new InflateWorkerError(`inflate worker failed: ${err.message}`, -1, { cause: err })));
    this.worker.on('exit', (code) => {
      if (!this.closed) this.fail(new InflateWorkerError(`inflate worker exited (code ${code}) before the end of the layer`, -1));
    });
    // Until start(), an idle worker must not keep the process alive (a prestarted one that the
    // run never used: a usage error, a zstd layer). After it, the worker's messages are what the
    // unpack awaits, so it holds the event loop open as any pending I/O would. (Adding a
    // 'message' listener refs a worker again: this comes after the listeners.)
    this.worker.unref();
  }

  /** Names the handler of the final ranges; once, before the first push(). */
  start(onFilled: (range: FilledRange) => void): void {
    if (this.onFilled) throw new Error('internal: an inflate worker serves one unpack');
    this.onFilled = onFilled;
    this.worker.ref();
  }

  /** The worker is done with `slot`; the oldest slots beyond the retained ones become free. */
  private inputConsumed(slot: number): void {
    const piece = this.recent.find((p) => p.slot === slot && !p.consumed);
    if (piece) piece.consumed = true;
    while (this.recent.length > this.retained && this.recent[0]!.consumed) this.freeInputs.push(this.recent.shift()!.slot);
  }

  /**
   * The newest input bytes still held in the slots, from compressed offset `from` to the end of
   * what was pushed (a copy), or undefined when `from` is older than that. For reading only
   * after the last push().
   */
  inputFrom(from: number): Buffer | undefined {
    const first = this.recent[0];
    if (first === undefined || from < first.start || from > this.pushed) return undefined;
    const parts = this.recent.filter((p) => p.start + p.len > from).map((p) => this.inputs[p.slot]!.subarray(Math.max(0, from - p.start), p.len));
    return Buffer.concat(parts);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wakeup.notify();
  }


  /** A free input slot, once one is (rejects once the worker failed). */
  private async freeSlot(): Promise<number> {
    for (;;) {
      if (this.failure) throw this.failure;
      const slot = this.freeInputs.pop();
      if (slot !== undefined) return slot;
      await this.wakeup.wait();
    }
  }

  /** Hands the worker `n` bytes at the start of input slot `slot`. */
  private post(slot: number, n: number): void {
    this.recent.push({ slot, start: this.pushed, len: n, consumed: false });
    this.pushed += n;
    this.worker.postMessage({ input: slot, len: n });
  }

  /** Queues compressed bytes (copied: the caller may reuse `chunk` once this resolves). */
  async push(chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length; ) {
      const slot = await this.freeSlot();
      const n = Math.min(chunk.length - at, this.inputs[slot]!.length);
      chunk.copy(this.inputs[slot]!, 0, at, at + n);
      this.post(slot, n);
      at += n;
    }
    if (this.failure) throw this.failure;
  }

  /**
   * Reads the next input straight into a free input slot with `read` (which fills the buffer it
   * is given unless the input ends): no copy on this thread. Resolves to the bytes read, as a view
   * valid until the next call, or undefined at the end of the input.
   */
  async fill(read: (into: Buffer) => Promise<number>): Promise<Buffer | undefined> {
    const slot = await this.freeSlot();
    const input = this.inputs[slot]!;
    let n: number;
    try {
      n = await read(input);
    } catch (err) {
      this.freeInputs.push(slot);
      throw err;
    }
    if (n === 0) {
      this.freeInputs.push(slot);
      return undefined;
    }
    if (this.failure) throw this.failure;
    this.post(slot, n);
    return input.subarray(0, n);
  }

  /** Fails push() and end() with `err` (the caller's own failure, e.g. a write that failed). */
  abort(err: Error): void {
    this.fail(err);
  }

  /** The output buffer of `range` may be overwritten again. */
  release(index: number): void {
    if (!this.closed) this.worker.postMessage({ free: index });
  }

  /** End of input: resolves once every member checked out, with the last buffer (held tail included). */
  async end(): Promise<InflateEnd> {
    if (this.failure) throw this.failure;
    this.worker.postMessage({ end: true });
    while (this.done === undefined) {
      if (this.failure) throw this.failure;
      await this.wakeup.wait();
    }
    const d = this.done;
    return {
      last: { index: d.final, buffer: this.outputs[d.final]!, start: d.reported, end: d.fill, last: true, boundaries: d.boundaries },
      members: d.members,
      compressedBytes: d.compressedBytes,
      lastMember: { offset: d.lastMember[0], compressedLength: d.lastMember[1], uncompressedLength: d.lastMember[2] },
      lastExtra: d.lastExtra ? Buffer.from(d.lastExtra.buffer, d.lastExtra.byteOffset, d.lastExtra.length) : undefined,
    };
  }

  /** Stops the worker; no more ranges are reported. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.worker.terminate();
    this.wakeup.notify();
  }
}
