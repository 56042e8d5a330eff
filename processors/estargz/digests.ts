/**
 * Streaming sha256 for the verifying unpack, done on a worker thread so hashing (two passes over
 * every file byte: whole file and chunk) runs on the second core while the main thread inflates.
 *
 * Updates are copied into 1 MiB batches and the batches transferred to the worker, which applies
 * them in order; `settle()` waits for every digest asked for. SyncDigests hashes on the calling
 * thread instead (TarWalker's default when given none).
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export interface DigestHandle {
  update(chunk: Buffer): void;
  /** Calls `done` with `sha256:<hex>`, now or when the worker answers. */
  end(done: (digest: string) => void): void;
}

export interface Digests {
  create(): DigestHandle;
  /** A new digest that starts from `handle`'s state (what it has hashed so far). */
  fork(handle: DigestHandle): DigestHandle;
  /** The same bytes into several digests (copied once on the way to the worker). */
  updateAll(handles: readonly DigestHandle[], chunk: Buffer): void;
  /** Resolves once every `end` callback has run. */
  settle(): Promise<void>;
  /** A promise to wait on when hashing lags behind (bounds the memory held in flight), else undefined. */
  backlog(): Promise<void> | undefined;
  close(): void;
}

class SyncHandle implements DigestHandle {
  readonly hash: Hash;
  constructor(hash: Hash) {
    this.hash = hash;
  }
  update(chunk: Buffer): void {
    this.hash.update(chunk);
  }
  end(done: (digest: string) => void): void {
    done(`sha256:${this.hash.digest('hex')}`);
  }
}

export class SyncDigests implements Digests {
  create(): DigestHandle {
    return new SyncHandle(createHash('sha256'));
  }
  fork(handle: DigestHandle): DigestHandle {
    return new SyncHandle((handle as SyncHandle).hash.copy());
  }
  updateAll(handles: readonly DigestHandle[], chunk: Buffer): void {
    for (const h of handles) h.update(chunk);
  }
  async settle(): Promise<void> {}
  backlog(): undefined {
    return undefined;
  }
  close(): void {}
}

// The worker's code: plain JS run with eval (the SEA has no separate worker file).
// A batch is { data, ops }: both ArrayBuffers, transferred there and back. ops holds records of
// four int32: [0, id, start, end] update(id, data[start:end]); [1, id, 0, 0] end(id), replied as
// [id, hex]; [2, id, src, 0] id starts as a copy of src's state. A 0-length record ends the list.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
const get = (id) => { let h = hashes.get(id); if (!h) { h = createHash('sha256'); hashes.set(id, h); } return h; };
parentPort.on('message', ({ data, ops, count }) => {
  const bytes = Buffer.from(data);
  const o = new Int32Array(ops);
  const done = [];
  for (let i = 0; i < count * 4; i += 4) {
    const kind = o[i], id = o[i + 1];
    if (kind === 0) get(id).update(bytes.subarray(o[i + 2], o[i + 3]));
    else if (kind === 1) { done.push(id, get(id).digest('hex')); hashes.delete(id); }
    else hashes.set(id, get(o[i + 2]).copy());
  }
  parentPort.postMessage({ done, data, ops }, [data, ops]);
});
`;

const BATCH_BYTES = 1 << 20;
/** Records per batch. */
const BATCH_OPS = 8192;
/** Batches in flight before the decoder waits (between input chunks), and the level it waits for. */
const HIGH_WATER = 4;
const LOW_WATER = 2;

class WorkerHandle implements DigestHandle {
  readonly id: number;
  private readonly owner: WorkerDigests;
  constructor(owner: WorkerDigests, id: number) {
    this.owner = owner;
    this.id = id;
  }
  update(chunk: Buffer): void {
    this.owner.updateIds([this.id], chunk);
  }
  end(done: (digest: string) => void): void {
    this.owner.endId(this.id, done);
  }
}

interface Batch {
  data: Buffer;
  ops: Int32Array;
}

function newBatch(): Batch {
  // Own ArrayBuffers (not pool slices), so they can be transferred whole.
  return { data: Buffer.from(new ArrayBuffer(BATCH_BYTES)), ops: new Int32Array(BATCH_OPS * 4) };
}

export class WorkerDigests implements Digests {
  private started: Worker | undefined;
  private nextId = 1;
  private batch: Batch = newBatch();
  private readonly free: Batch[] = [];
  private used = 0;
  private count = 0;
  private readonly waiting = new Map<number, (digest: string) => void>();
  private failure: Error | undefined;
  private settled: (() => void) | undefined;
  /** Batches posted and not yet returned. */
  private inFlight = 0;
  private caughtUp: (() => void) | undefined;

  /** Started on the first digest: a plain gzip layer never needs one. */
  private get worker(): Worker {
    this.started ??= this.start();
    return this.started;
  }

  private start(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    this.started = worker;
    worker.unref();
    worker.on('message', ({ done, data, ops }: { done: Array<number | string>; data: ArrayBuffer; ops: ArrayBuffer }) => {
      this.inFlight--;
      if (this.free.length < 2) this.free.push({ data: Buffer.from(data), ops: new Int32Array(ops) });
      if (this.inFlight <= LOW_WATER) this.caughtUp?.();
      for (let i = 0; i < done.length; i += 2) {
        const id = done[i] as number;
        const cb = this.waiting.get(id);
        this.waiting.delete(id);
        cb?.(`sha256:${done[i + 1] as string}`);
      }
      if (this.waiting.size === 0) this.settled?.();
    });
    worker.on('error', (err: Error) => {
      this.failure = err;
      this.settled?.();
      this.caughtUp?.();
    });
    return worker;
  }

  private flush(): void {
    if (this.count === 0) return;
    const { data, ops } = this.batch;
    this.worker.postMessage({ data: data.buffer, ops: ops.buffer, count: this.count }, [data.buffer as ArrayBuffer, ops.buffer as ArrayBuffer]);
    this.inFlight++;
    this.count = 0;
    this.used = 0;
    this.batch = this.free.pop() ?? newBatch();
  }

  private op(kind: number, id: number, a: number, b: number): void {
    if (this.count === BATCH_OPS) this.flush();
    const o = this.batch.ops;
    const i = this.count * 4;
    o[i] = kind;
    o[i + 1] = id;
    o[i + 2] = a;
    o[i + 3] = b;
    this.count++;
  }

  updateIds(ids: readonly number[], chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.used === BATCH_BYTES || this.count + ids.length > BATCH_OPS) this.flush();
      const take = Math.min(chunk.length - at, BATCH_BYTES - this.used);
      chunk.copy(this.batch.data, this.used, at, at + take);
      for (const id of ids) this.op(0, id, this.used, this.used + take);
      this.used += take;
      at += take;
    }
  }

  endId(id: number, done: (digest: string) => void): void {
    this.waiting.set(id, done);
    this.op(1, id, 0, 0);
  }

  updateAll(handles: readonly DigestHandle[], chunk: Buffer): void {
    this.updateIds(handles.map((h) => (h as WorkerHandle).id), chunk);
  }

  create(): DigestHandle {
    return new WorkerHandle(this, this.nextId++);
  }

  fork(handle: DigestHandle): DigestHandle {
    const id = this.nextId++;
    this.op(2, id, (handle as WorkerHandle).id, 0);
    return new WorkerHandle(this, id);
  }

  async settle(): Promise<void> {
    this.flush();
    if (this.waiting.size > 0 && !this.failure) {
      await new Promise<void>((resolve) => {
        this.settled = resolve;
      });
    }
    if (this.failure) throw new Error(`digest worker failed: ${this.failure.message}`, { cause: this.failure });
  }

  backlog(): Promise<void> | undefined {
    if (this.inFlight < HIGH_WATER || this.failure) return undefined;
    return new Promise((resolve) => {
      this.caughtUp = () => {
        this.caughtUp = undefined;
        resolve();
      };
    });
  }

  close(): void {
    if (this.started) void this.started.terminate();
  }
}

/** Hashing on a worker thread; the worker starts with the first digest. */
export function createDigests(): Digests {
  return new WorkerDigests();
}
