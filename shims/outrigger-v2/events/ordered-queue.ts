/**
 * A bounded FIFO drained by one sender at a time: items leave in the order they were queued,
 * a failed send is retried (with backoff) before anything behind it, so a task's exit is never
 * forwarded ahead of its start. `push` never waits: a slow or absent consumer (containerd
 * restarting) must not block the task service. When full, new items are refused and counted.
 * An item is given up after `giveUpAfterMs` of failures, or at once when the sender says the
 * failure is permanent.
 */
export interface SendOutcome {
  readonly ok: boolean;
  /** Retrying cannot help (e.g. the peer rejected the item as invalid). */
  readonly permanent?: boolean;
  readonly error?: unknown;
}

export interface OrderedQueueOptions<T> {
  readonly send: (item: T) => Promise<SendOutcome>;
  readonly capacity?: number;
  /** First retry delay; doubles up to maxBackoffMs. */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly giveUpAfterMs?: number;
  readonly onDrop?: (item: T, reason: string, error: unknown) => void;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

export class OrderedQueue<T> {
  readonly #items: T[] = [];
  readonly #opts: Required<Omit<OrderedQueueOptions<T>, 'onDrop'>> & Pick<OrderedQueueOptions<T>, 'onDrop'>;
  #running = false;
  #idleWaiters: (() => void)[] = [];
  #refused = 0;
  #closed = false;

  constructor(opts: OrderedQueueOptions<T>) {
    this.#opts = {
      capacity: 2048,
      backoffMs: 100,
      maxBackoffMs: 2000,
      giveUpAfterMs: 60_000,
      now: Date.now,
      sleep: defaultSleep,
      ...opts,
    };
  }

  get length(): number {
    return this.#items.length;
  }

  /** Items refused because the queue was full. */
  get refused(): number {
    return this.#refused;
  }

  /** Queues `item`; false when the queue is full or closed (the item is dropped). */
  push(item: T): boolean {
    if (this.#closed) {
      this.#opts.onDrop?.(item, 'queue closed', undefined);
      return false;
    }
    if (this.#items.length >= this.#opts.capacity) {
      this.#refused++;
      this.#opts.onDrop?.(item, `queue full (${this.#opts.capacity})`, undefined);
      return false;
    }
    this.#items.push(item);
    if (!this.#running) void this.#drain();
    return true;
  }

  /** Resolves once everything queued so far has been sent or dropped, or after `timeoutMs`. */
  idle(timeoutMs?: number): Promise<boolean> {
    if (!this.#running && this.#items.length === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        resolve(true);
      };
      this.#idleWaiters.push(done);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#idleWaiters = this.#idleWaiters.filter((w) => w !== done);
          resolve(false);
        }, timeoutMs);
      }
    });
  }

  /** Refuses further items; queued ones are still sent. */
  close(): void {
    this.#closed = true;
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#items.length > 0) {
        const item = this.#items[0] as T;
        await this.#deliver(item);
        this.#items.shift();
      }
    } finally {
      this.#running = false;
      for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  async #deliver(item: T): Promise<void> {
    const first = this.#opts.now();
    let delay = this.#opts.backoffMs;
    for (;;) {
      let outcome: SendOutcome;
      try {
        outcome = await this.#opts.send(item);
      } catch (error) {
        outcome = { ok: false, error };
      }
      if (outcome.ok) return;
      if (outcome.permanent) {
        this.#opts.onDrop?.(item, 'rejected', outcome.error);
        return;
      }
      if (this.#opts.now() - first >= this.#opts.giveUpAfterMs) {
        this.#opts.onDrop?.(item, `still failing after ${this.#opts.giveUpAfterMs} ms`, outcome.error);
        return;
      }
      await this.#opts.sleep(delay);
      delay = Math.min(delay * 2, this.#opts.maxBackoffMs);
    }
  }
}
