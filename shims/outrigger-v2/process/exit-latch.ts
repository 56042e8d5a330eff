/** A one-shot value many waiters can await (Wait RPCs), set exactly once when the exit is recorded. */
import type { ExitInfo } from './lifecycle.ts';

export class ExitLatch {
  readonly promise: Promise<ExitInfo>;
  #resolve!: (exit: ExitInfo) => void;
  #value: ExitInfo | undefined;

  constructor() {
    this.promise = new Promise((resolve) => (this.#resolve = resolve));
  }

  get value(): ExitInfo | undefined {
    return this.#value;
  }

  set(exit: ExitInfo): void {
    if (this.#value !== undefined) throw new Error('exit already recorded');
    this.#value = exit;
    this.#resolve(exit);
  }
}
