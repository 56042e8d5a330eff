/**
 * Publishes task events to containerd: `containerd.services.events.ttrpc.v1.Events/Forward` on
 * $TTRPC_ADDRESS (shim-protocol.md §3.1), with the namespace in the envelope and in the
 * `containerd-namespace-ttrpc` metadata. The connection is opened lazily and re-opened after
 * containerd restarts; events go through an OrderedQueue, so they reach containerd in the
 * order the service published them and the service never waits for containerd.
 */
import { toBinary } from '@bufbuild/protobuf';
import type { DescMessage, MessageInitShape } from '@bufbuild/protobuf';
import { ForwardRequestSchema } from '../../../src/api/gen/containerd/services/events/ttrpc/v1/events_pb.ts';
import { EVENTS_SERVICE, FORWARD_METHOD, forwardRequestFor, NAMESPACE_METADATA_KEY, topicOf } from '../../../src/api/task-events.ts';
import { TtrpcClient } from '../../../src/ttrpc/client.ts';
import { Code, TtrpcError } from '../../../src/ttrpc/status.ts';
import type { Logger } from '../log.ts';
import { OrderedQueue } from './ordered-queue.ts';

interface QueuedEvent {
  readonly topic: string;
  readonly payload: Uint8Array;
}

export interface EventPublisher {
  publish<Desc extends DescMessage>(schema: Desc, event: MessageInitShape<Desc>): void;
  /** Waits (bounded) until queued events are out. */
  flush(timeoutMs: number): Promise<boolean>;
  close(): void;
}

/** After this long without an answer to Forward, say so in the log (once per attempt). */
const SLOW_FORWARD_MS = 10_000;

/** Codes after which resending the same envelope cannot succeed. */
const PERMANENT = new Set<number>([Code.InvalidArgument, Code.Unimplemented, Code.NotFound, Code.AlreadyExists, Code.FailedPrecondition]);

export class TtrpcEventPublisher implements EventPublisher {
  readonly #address: string;
  readonly #namespace: string;
  readonly #log: Logger;
  readonly #queue: OrderedQueue<QueuedEvent>;
  #client: TtrpcClient | undefined;

  constructor(address: string, namespace: string, log: Logger) {
    this.#address = address;
    this.#namespace = namespace;
    this.#log = log;
    this.#queue = new OrderedQueue<QueuedEvent>({
      send: (e) => this.#send(e),
      onDrop: (e, reason, error) => this.#log.error({ topic: e.topic, reason, err: error }, 'event dropped'),
    });
  }

  publish<Desc extends DescMessage>(schema: Desc, event: MessageInitShape<Desc>): void {
    const request = forwardRequestFor(this.#namespace, schema, event);
    this.#queue.push({ topic: topicOf(schema), payload: toBinary(ForwardRequestSchema, request) });
  }

  flush(timeoutMs: number): Promise<boolean> {
    return this.#queue.idle(timeoutMs);
  }

  close(): void {
    this.#queue.close();
    void this.#client?.close();
    this.#client = undefined;
  }

  async #connected(): Promise<TtrpcClient> {
    if (this.#client) return this.#client;
    const client = await TtrpcClient.connect(this.#address, { timeoutMs: 5_000 });
    this.#client = client;
    void client.closed.then(() => {
      if (this.#client === client) this.#client = undefined;
    });
    return client;
  }

  async #send(event: QueuedEvent): Promise<{ ok: boolean; permanent?: boolean; error?: unknown }> {
    try {
      const client = await this.#connected();
      // No deadline while the connection lives: a request containerd has not answered yet may
      // still be in its socket buffer (containerd stopped, swapped out, overloaded), and giving
      // up on it and resending on a new connection delivers the event twice once containerd
      // reads both. Only a closed connection (containerd restarted) means resend.
      const slow = setTimeout(
        () => this.#log.warn({ topic: event.topic, waitedMs: SLOW_FORWARD_MS }, 'containerd has not acknowledged an event yet; still waiting'),
        SLOW_FORWARD_MS,
      ).unref();
      try {
        await client.call(EVENTS_SERVICE, FORWARD_METHOD, event.payload, {
          metadata: { [NAMESPACE_METADATA_KEY]: this.#namespace },
        });
      } finally {
        clearTimeout(slow);
      }
      this.#log.debug({ topic: event.topic }, 'event forwarded');
      return { ok: true };
    } catch (error) {
      if (error instanceof TtrpcError && PERMANENT.has(error.code)) return { ok: false, permanent: true, error };
      // Connection trouble: drop the client so the next attempt dials again.
      void this.#client?.close();
      this.#client = undefined;
      this.#log.warn({ topic: event.topic, err: error }, 'forwarding event failed; will retry');
      return { ok: false, error };
    }
  }
}
