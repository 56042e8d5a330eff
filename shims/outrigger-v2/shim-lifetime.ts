/**
 * When a shim that may serve many tasks (a CRI sandbox, or every task of a namespace with
 * ShimGrouping = "node") may exit. containerd sends Shutdown after each task's Delete; the shim
 * leaves only when no task is left, no Create is in flight, and no `start` that joined it
 * (./bootstrap/group-join.ts) is still waiting for its Create. A join is held until that
 * task's Create arrives or `joinTtlMs` passes (containerd gave up between `start` and Create);
 * a shim that is left with nothing after that also leaves without a Shutdown, so a `start`
 * whose Create never came does not leave a shim behind forever. Once leaving, joins are
 * refused (Unavailable) and `start` spawns a new shim.
 */
import { Code, TtrpcError } from '../../src/ttrpc/status.ts';
import type { MethodHandler, ServiceHandlers } from '../../src/ttrpc/server.ts';
import { decodeJoinRequest, JOIN_METHOD } from './bootstrap/group-join.ts';

/** How long a joined task may take from `start` to Create (containerd's own start timeout is far shorter in practice). */
export const DEFAULT_JOIN_TTL_MS = 30_000;

const EMPTY = new Uint8Array();

export interface ShimLifetimeOptions {
  /** Tasks the service holds plus Creates in flight. */
  readonly tasks: () => number;
  /** Begins the shim's exit; called at most once. */
  readonly stop: (why: string) => void;
  readonly joinTtlMs?: number;
  readonly now?: () => number;
}

export class ShimLifetime {
  readonly #opts: ShimLifetimeOptions;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** Task id → when its join lapses. */
  readonly #joined = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #leaving = false;

  constructor(opts: ShimLifetimeOptions) {
    this.#opts = opts;
    this.#ttlMs = opts.joinTtlMs ?? DEFAULT_JOIN_TTL_MS;
    this.#now = opts.now ?? Date.now;
  }

  get leaving(): boolean {
    return this.#leaving;
  }

  /** Task ids joined and not yet created. */
  get pendingJoins(): readonly string[] {
    return [...this.#joined.keys()];
  }

  /** A `start` for `id` joined (or spawned) this shim. False when the shim is already leaving. */
  join(id: string): boolean {
    if (this.#leaving) return false;
    this.#joined.set(id, this.#now() + this.#ttlMs);
    // The lapse is timed from here: a daemon whose spawning `start` is never followed by a
    // Create gets no Create, Delete or Shutdown, so nothing else would ever call check() and it
    // would serve an empty socket forever. An armed timer fires no later than this join lapses.
    if (this.#timer === undefined) this.#armFor(this.#ttlMs);
    return true;
  }

  /** containerd's Create for `id` arrived: the task now counts through `tasks()`. */
  created(id: string): void {
    this.#joined.delete(id);
  }

  /**
   * containerd sent Shutdown for `id`: it is done with that task (deleted, or its Create failed),
   * so a join of `id` no longer holds the shim.
   */
  shutdownRequested(id: string): void {
    this.#joined.delete(id);
    this.check('Shutdown RPC with no task left');
  }

  /** Leave if no task, Create in flight or live join holds the shim. */
  check(why: string): void {
    if (this.#leaving) return;
    const now = this.#now();
    for (const [id, until] of this.#joined) if (until <= now) this.#joined.delete(id);
    if (this.#opts.tasks() > 0) return;
    if (this.#joined.size > 0) {
      this.#armFor(Math.min(...this.#joined.values()) - now);
      return;
    }
    this.#leave(why);
  }

  /** Leaving for another reason (SIGTERM). */
  markLeaving(): void {
    this.#leaving = true;
    this.#disarm();
  }

  #leave(why: string): void {
    this.markLeaving();
    this.#opts.stop(why);
  }

  #armFor(ms: number): void {
    this.#disarm();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.check('joined tasks never arrived and no task is left');
    }, Math.max(ms, 0) + 10);
    this.#timer.unref?.();
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The Group service's handlers, for TtrpcServer.register(GROUP_SERVICE, …). */
  handlers(): ServiceHandlers {
    const join: MethodHandler = async (payload) => {
      const id = decodeJoinRequest(payload);
      if (id === '') throw new TtrpcError(Code.InvalidArgument, 'join: task id is empty');
      if (!this.join(id)) throw new TtrpcError(Code.Unavailable, `join ${id}: shim is shutting down`);
      return EMPTY;
    };
    return new Map([[JOIN_METHOD, join]]);
  }
}
