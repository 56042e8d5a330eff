/**
 * A unix socket that waits for someone to connect and pass one file descriptor: the shape of
 * runc's --console-socket (runc connects, sends the pty master with SCM_RIGHTS, hangs up).
 *
 * net.Server accepts on the event loop; `pauseOnConnect` keeps libuv from ever reading the
 * accepted socket, because a plain read() would discard the descriptor that rides on the
 * first byte. libuv offers no readiness callback for a socket it does not read, so we try a
 * non-blocking recvmsg with a short, growing back-off (1 ms doubling to 25 ms) until the
 * descriptor arrives or the timeout passes.
 *
 * Listen first, start the sender, then `receive()`. One-shot: after receive() settles, the
 * listener is closed and Node removes the socket file.
 */
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { receiveFd, type ReceivedFd } from './fd-passing.ts';
import { socketFd } from './socket-fd.ts';

export interface ReceiveOptions {
  /** Give up after this long (default 30 s). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

const FIRST_BACKOFF_MS = 1;
const MAX_BACKOFF_MS = 25;

export class FdSocketListener {
  readonly path: string;
  readonly #server: net.Server;
  /** Accepted connections not yet given up on, oldest first. */
  readonly #connections: net.Socket[] = [];
  #accepted = 0;
  #closed = false;
  /** Ends the current wait early (a connection arrived, or close()). */
  #wake: (() => void) | undefined;

  private constructor(path: string, server: net.Server) {
    this.path = path;
    this.#server = server;
    server.on('connection', (socket) => {
      socket.on('error', () => {
        // A sender that resets the connection shows up as a failed recvmsg, reported there.
      });
      this.#accepted++;
      if (this.#closed) {
        socket.destroy();
        return;
      }
      this.#connections.push(socket);
      this.#wake?.();
    });
  }

  /** Listens on `path` (which must not exist yet). */
  static async listen(path: string): Promise<FdSocketListener> {
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`cannot listen on unix socket ${path}: ${err.message}`, { cause: err })));
      server.listen(path, () => resolve());
    });
    server.on('error', () => {
      // Once listening, a failed accept only means no sender; receive() reports the timeout.
    });
    return new FdSocketListener(path, server);
  }

  /** Waits for a connection and for the descriptor it sends. */
  async receive(options: ReceiveOptions = {}): Promise<ReceivedFd> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const deadline = performance.now() + timeoutMs;
    const rejected: string[] = [];
    let backoff = FIRST_BACKOFF_MS;
    try {
      for (;;) {
        options.signal?.throwIfAborted();
        if (this.#closed) throw new Error(`unix socket ${this.path} was closed before a file descriptor arrived`);
        const left = deadline - performance.now();
        const connection = this.#connections[0];
        if (connection) {
          let received: ReceivedFd | null;
          try {
            received = receiveFd(socketFd(connection));
          } catch (err) {
            // This sender hung up or sent something else; a later connection may still deliver.
            rejected.push(err instanceof Error ? err.message : String(err));
            this.#connections.shift()?.destroy();
            backoff = FIRST_BACKOFF_MS;
            continue;
          }
          if (received) return received;
        }
        if (left <= 0) break;
        // Nobody connected yet: sleep until someone does. Connected: poll with back-off.
        await this.#sleep(connection ? Math.min(backoff, left) : left, options.signal);
        if (connection) backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
      const why = rejected.length ? `; rejected: ${rejected.join('; ')}` : '';
      throw new Error(
        `no file descriptor received on unix socket ${this.path} within ${timeoutMs} ms (${this.#accepted} connection(s) accepted${why})`,
      );
    } finally {
      await this.close();
    }
  }

  /** Closes the listener and any accepted connection; the socket file is removed. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.();
    for (const connection of this.#connections.splice(0)) connection.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    this.#wake = stop;
    signal?.addEventListener('abort', stop, { once: true });
    try {
      await sleep(ms, undefined, { signal: controller.signal });
    } catch {
      // Woken early; the loop looks at why.
    } finally {
      this.#wake = undefined;
      signal?.removeEventListener('abort', stop);
    }
  }
}
