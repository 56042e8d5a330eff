/**
 * The receive side of one ttrpc stream: messages pushed as Data frames arrive, read with
 * `for await`. Ends when the peer closes its side, or fails with the stream's error.
 */
import { Wakeup } from '../streams/wakeup.ts';

export class MessageQueue implements AsyncIterable<Uint8Array> {
  readonly #items: Uint8Array[] = [];
  #ended = false;
  #error: Error | undefined;
  readonly #wakeup = new Wakeup();

  /** Messages received and not yet read. */
  get size(): number {
    return this.#items.length;
  }

  /** True once the peer closed its side (or the stream failed): nothing more will be pushed. */
  get closed(): boolean {
    return this.#ended || this.#error !== undefined;
  }

  push(message: Uint8Array): void {
    if (this.closed) throw new Error('ttrpc: message pushed to a closed stream');
    this.#items.push(message);
    this.#notify();
  }

  end(): void {
    this.#ended = true;
    this.#notify();
  }

  fail(error: Error): void {
    if (this.closed) return;
    this.#error = error;
    this.#notify();
  }

  #notify(): void {
    this.#wakeup.notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const next = this.#items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#error) throw this.#error;
      if (this.#ended) return;
      await this.#wakeup.wait();
    }
  }
}
