/**
 * The layer's HMAC-SHA256 (over the ciphertext, keyed with the layer key: imgcrypt.md §3) on a
 * worker thread, so it runs on the second core while the main thread decrypts and does the I/O.
 * On one thread the two were ~354 ms (AES-256-CTR) + ~214 ms (HMAC) of a 300 MB layer, one after
 * the other (issue #9); HMAC-SHA256 is the slower of the two, so it is the one moved.
 *
 * No ciphertext byte is copied: the reader fills SharedArrayBuffers that the worker was given
 * once (shared-chunk-reader.ts), and an update only names (buffer number, length). The worker
 * answers each update once it has hashed those bytes; only then may the buffer be refilled.
 * The worker never judges the layer: it returns the digest and the main thread compares it.
 *
 * When the worker fails or exits early, every later call and every wait rejects with an error
 * that says so, so the caller never reaches the comparison and never releases the held tail.
 */
import { Worker } from 'node:worker_threads';

// Plain JS run with eval: the SEA has no separate file for a worker (as processors/estargz/digests.ts).
// Messages in: { key } (first), { share: SharedArrayBuffer } (numbered from 0 in order),
// { update: buffer number, length }, { digest: true }. Out: { done: buffer number } per update,
// { digest: Uint8Array } at the end.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHmac } = require('node:crypto');
const shared = [];
let mac;
parentPort.on('message', (m) => {
  if (m.update !== undefined) {
    mac.update(shared[m.update].subarray(0, m.length));
    parentPort.postMessage({ done: m.update });
  } else if (m.share) shared.push(Buffer.from(m.share));
  else if (m.key) mac = createHmac('sha256', Buffer.from(m.key));
  else if (m.digest) parentPort.postMessage({ digest: mac.digest() });
});
`;

interface Waiter {
  resolve(digest: Buffer): void;
  reject(err: Error): void;
}

export class HmacWorker {
  private started: Worker | undefined;
  private failure: Error | undefined;
  private closed = false;
  private began = false;
  private onDone: (index: number) => void = () => {};
  private readonly failureListeners: Array<(err: Error) => void> = [];
  private waiter: Waiter | undefined;
  private digested = false;

  /**
   * Starts the thread, if not yet started: early, so that its start-up (~25 ms of CPU, on the
   * other core) overlaps reading the payload and unwrapping the key. begin() starts it otherwise.
   */
  start(): void {
    if (this.started || this.closed) return;
    const worker = new Worker(WORKER_SOURCE, { eval: true, name: 'imgcrypt-hmac' });
    this.started = worker;
    worker.on('message', (m: { done?: number; digest?: Uint8Array }) => {
      if (m.done !== undefined) this.onDone(m.done);
      else if (m.digest !== undefined) {
        this.digested = true;
        const waiter = this.waiter;
        this.waiter = undefined;
        waiter?.resolve(Buffer.from(m.digest.buffer, m.digest.byteOffset, m.digest.byteLength));
      }
    });
    worker.on('error', (err: Error) => this.fail(new Error(`the HMAC worker thread failed: ${err.message}`, { cause: err })));
    worker.on('exit', (code: number) => {
      if (!this.closed) this.fail(new Error(`the HMAC worker thread exited (code ${code}) before the layer's HMAC was computed`));
    });
  }

  private get worker(): Worker {
    this.start();
    return this.started!;
  }

  /** Keys the HMAC and shares the reader's buffers; `onDone(n)` is called when buffer n has been hashed. */
  begin(key: Buffer, memories: readonly SharedArrayBuffer[], onDone: (index: number) => void): void {
    this.check();
    if (this.began) throw new Error('HmacWorker.begin called twice');
    this.began = true;
    this.onDone = onDone;
    this.worker.postMessage({ key: new Uint8Array(key) });
    for (const share of memories) this.worker.postMessage({ share });
  }

  /** Hashes the first `length` bytes of shared buffer `index` next. */
  update(index: number, length: number): void {
    this.check();
    this.worker.postMessage({ update: index, length });
  }

  /** The HMAC over every byte passed to update(), once the worker has hashed them all. */
  digest(): Promise<Buffer> {
    this.check();
    if (this.waiter !== undefined || this.digested) throw new Error('HmacWorker.digest called twice');
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.worker.postMessage({ digest: true });
    });
  }

  /** `listener` hears of a failure (the reader stops waiting for buffers the worker will never return). */
  onFailure(listener: (err: Error) => void): void {
    if (this.failure) listener(this.failure);
    else this.failureListeners.push(listener);
  }

  /** Stops the thread (if it ever started); a failure after this is not one. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waiter?.reject(new Error('the HMAC worker was closed before the digest came back'));
    this.waiter = undefined;
    await this.started?.terminate();
  }

  /**
   * Kills the thread as a crash would (tests, and nothing else: the worker's death has to be
   * handled like any other failure).
   */
  crashForTest(): Promise<number | undefined> {
    return this.started ? this.started.terminate() : Promise.resolve(undefined);
  }

  private check(): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('the HMAC worker is closed');
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(err);
    for (const listener of this.failureListeners.splice(0)) listener(err);
  }
}
