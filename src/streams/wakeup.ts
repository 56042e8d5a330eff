/**
 * One waiter on one thread, woken by the next notify(): how a producer and a consumer that share
 * state (a queue, a pool of buffers, a failure) hand control to each other. The waiter looks at
 * the state again when woken, so a notify() with nobody waiting is simply dropped.
 */
export class Wakeup {
  #resolve: (() => void) | undefined;

  /** Resolves at the next notify(). */
  wait(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#resolve = resolve;
    });
  }

  notify(): void {
    const resolve = this.#resolve;
    this.#resolve = undefined;
    resolve?.();
  }
}
