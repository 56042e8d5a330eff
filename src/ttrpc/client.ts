/**
 * ttrpc client over a unix socket, as Go's: stream ids 1, 3, 5 … per connection, requests
 * multiplexed and answered in any order, timeout_nano set from the call's timeout, metadata as
 * repeated KeyValue, a non-OK Response.status raised as TtrpcError. A request over 4 MiB is
 * refused before sending (ResourceExhausted), as ttrpc ≥ 1.2 does. Streaming calls
 * (`openStream`) need a ttrpc ≥ 1.2 peer; containerd 1.6's ttrpc 1.1 ignores Data frames.
 */
import net from 'node:net';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { RequestSchema, ResponseSchema } from '../api/gen/ttrpc/request_pb.ts';
import { encodeFrame, Flag, MAX_MESSAGE_SIZE, MessageType, oversizeMessage } from './frame.ts';
import type { Frame } from './frame.ts';
import { FrameDecoder, FrameProtocolError } from './frame-decoder.ts';
import type { DecodedItem } from './frame-decoder.ts';
import { MessageQueue } from './message-queue.ts';
import { keyValuesFromMetadata } from './metadata.ts';
import type { MetadataInit } from './metadata.ts';
import { Code, errorFromStatus, TtrpcError } from './status.ts';

export interface CallOptions {
  /** Sent as timeout_nano and enforced locally (DeadlineExceeded). */
  readonly timeoutMs?: number;
  readonly metadata?: MetadataInit;
  readonly signal?: AbortSignal;
}

export interface StreamOptions extends CallOptions {
  /** The client will send Data frames (Request flag remote-open); otherwise the request payload is its only message. */
  readonly clientStreaming: boolean;
  /** The request payload: the input message of a method that is not client-streaming. */
  readonly payload?: Uint8Array;
}

/** The client's end of a streaming call (ttrpc ≥ 1.2 peers only). */
export interface ClientStream {
  readonly streamId: number;
  /** Messages the server sends as Data frames; ends when it closes the stream, fails with its error status. */
  readonly messages: AsyncIterable<Uint8Array>;
  /** The final Response payload (undefined when the server ended with a closing Data frame); rejects with the error status. */
  readonly done: Promise<Uint8Array | undefined>;
  /** Sends one message (client-streaming only). */
  send(payload: Uint8Array): void;
  /** Tells the server no more messages follow (Data frame flagged remote-closed and no-data). */
  closeSend(): void;
}

interface OpenStream {
  readonly inbox: MessageQueue;
  readonly resolve: (payload: Uint8Array | undefined) => void;
  readonly reject: (err: Error) => void;
  readonly cleanup: () => void;
}

export interface ConnectOptions {
  /** Give up connecting after this long (default 10 s). */
  readonly timeoutMs?: number;
  readonly maxMessageSize?: number;
}

interface Pending {
  readonly resolve: (payload: Uint8Array) => void;
  readonly reject: (err: Error) => void;
  readonly cleanup: () => void;
}

const MAX_STREAM_ID = 0xffff_ffff;

/**
 * The filesystem path of a ttrpc address: `unix:///abs/path` or a plain path. (containerd reads
 * an address without `unix://` as an abstract socket name; a human at a terminal means a path.)
 */
export function socketPathOf(address: string): string {
  if (address.startsWith('unix://')) return address.slice('unix://'.length);
  if (address.startsWith('ttrpc+unix://')) return address.slice('ttrpc+unix://'.length);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) throw new Error(`ttrpc: unsupported address scheme in "${address}" (want unix://)`);
  return address;
}

export class TtrpcClient {
  readonly #socket: net.Socket;
  readonly #decoder: FrameDecoder;
  readonly #maxMessageSize: number;
  readonly #pending = new Map<number, Pending>();
  readonly #streams = new Map<number, OpenStream>();
  #nextStreamId = 1;
  #closedError: TtrpcError | undefined;
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket, maxMessageSize: number) {
    this.#socket = socket;
    this.#maxMessageSize = maxMessageSize;
    this.#decoder = new FrameDecoder(maxMessageSize);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#fail(new TtrpcError(Code.Unavailable, `ttrpc: connection error: ${err.message}`)));
    socket.once('close', () => this.#fail(new TtrpcError(Code.Unavailable, 'ttrpc: closed')));
  }

  static async connect(address: string, options: ConnectOptions = {}): Promise<TtrpcClient> {
    const path = socketPathOf(address);
    const timeoutMs = options.timeoutMs ?? 10_000;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection({ path });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`ttrpc: connecting to ${path} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`ttrpc: cannot connect to ${path}: ${err.message}`, { cause: err }));
      });
    });
    return new TtrpcClient(socket, options.maxMessageSize ?? MAX_MESSAGE_SIZE);
  }

  /** Wraps an already connected socket. */
  static fromSocket(socket: net.Socket, maxMessageSize: number = MAX_MESSAGE_SIZE): TtrpcClient {
    return new TtrpcClient(socket, maxMessageSize);
  }

  /** Calls `service/method` with an encoded request; resolves to the encoded response. */
  call(service: string, method: string, payload: Uint8Array, options: CallOptions = {}): Promise<Uint8Array> {
    let request: { streamId: number; body: Uint8Array };
    try {
      request = this.#prepare(service, method, payload, options);
    } catch (err) {
      return Promise.reject(err);
    }
    const { streamId, body } = request;
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => settle(new TtrpcError(Code.Canceled, 'context canceled'));
      const cleanup = () => {
        if (timer !== undefined) clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.#pending.delete(streamId);
      };
      const settle = (err: Error) => {
        cleanup();
        reject(err);
      };
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => settle(new TtrpcError(Code.DeadlineExceeded, 'context deadline exceeded')), options.timeoutMs);
      }
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(streamId, { resolve, reject, cleanup });
      this.#socket.write(encodeFrame({ streamId, type: MessageType.request, flags: 0, payload: body }));
    });
  }

  /** Opens a streaming call: Request flagged remote-open (client-streaming) or remote-closed. */
  openStream(service: string, method: string, options: StreamOptions): ClientStream {
    const { streamId, body } = this.#prepare(service, method, options.payload ?? new Uint8Array(0), options);
    const inbox = new MessageQueue();
    let localClosed = !options.clientStreaming;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let resolveDone!: (payload: Uint8Array | undefined) => void;
    let rejectDone!: (err: Error) => void;
    const done = new Promise<Uint8Array | undefined>((resolve, reject) => {
      resolveDone = resolve;
      rejectDone = reject;
    });
    // Callers often only iterate `messages`; the same error reaches them there.
    done.catch(() => {});
    const onAbort = () => entry.reject(new TtrpcError(Code.Canceled, 'context canceled'));
    const cleanup = () => {
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      this.#streams.delete(streamId);
    };
    const entry: OpenStream = {
      inbox,
      resolve: (payload) => {
        cleanup();
        inbox.end();
        resolveDone(payload);
      },
      reject: (err) => {
        cleanup();
        inbox.fail(err);
        rejectDone(err);
      },
      cleanup,
    };
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => entry.reject(new TtrpcError(Code.DeadlineExceeded, 'context deadline exceeded')), options.timeoutMs);
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });
    this.#streams.set(streamId, entry);
    const flags = options.clientStreaming ? Flag.remoteOpen : Flag.remoteClosed;
    this.#socket.write(encodeFrame({ streamId, type: MessageType.request, flags, payload: body }));
    return {
      streamId,
      messages: inbox,
      done,
      send: (payload) => {
        if (localClosed || settled) throw new Error(`ttrpc: stream ${streamId} of ${service}/${method} is closed for sending`);
        if (payload.length > this.#maxMessageSize) throw new TtrpcError(Code.ResourceExhausted, oversizeMessage(payload.length, this.#maxMessageSize));
        this.#socket.write(encodeFrame({ streamId, type: MessageType.data, flags: 0, payload }));
      },
      closeSend: () => {
        if (localClosed || settled) return;
        localClosed = true;
        this.#socket.write(encodeFrame({ streamId, type: MessageType.data, flags: Flag.remoteClosed | Flag.noData, payload: new Uint8Array(0) }));
      },
    };
  }

  /** Encodes a Request and takes the next stream id; throws what the call should fail with. */
  #prepare(service: string, method: string, payload: Uint8Array, options: CallOptions): { streamId: number; body: Uint8Array } {
    if (this.#closedError) throw this.#closedError;
    if (options.signal?.aborted) throw new TtrpcError(Code.Canceled, 'context canceled');
    const timeoutNano = options.timeoutMs !== undefined ? BigInt(Math.max(1, Math.round(options.timeoutMs * 1e6))) : 0n;
    const body = toBinary(
      RequestSchema,
      create(RequestSchema, { service, method, payload, timeoutNano, metadata: keyValuesFromMetadata(options.metadata) }),
    );
    if (body.length > this.#maxMessageSize) throw new TtrpcError(Code.ResourceExhausted, oversizeMessage(body.length, this.#maxMessageSize));
    if (this.#nextStreamId > MAX_STREAM_ID) throw new TtrpcError(Code.Unavailable, 'ttrpc: stream ids exhausted on this connection; reconnect');
    const streamId = this.#nextStreamId;
    this.#nextStreamId += 2;
    return { streamId, body };
  }

  /** Calls and streams in flight. */
  get pendingCount(): number {
    return this.#pending.size + this.#streams.size;
  }

  close(): Promise<void> {
    this.#socket.end();
    this.#fail(new TtrpcError(Code.Unavailable, 'ttrpc: closed'));
    return this.closed;
  }

  #onData(chunk: Buffer): void {
    let items: DecodedItem[];
    try {
      items = this.#decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof FrameProtocolError)) throw err;
      this.#fail(new TtrpcError(Code.Unavailable, `ttrpc: ${err.message}`));
      this.#socket.destroy();
      return;
    }
    for (const item of items) {
      if (item.kind === 'oversized') {
        const err = new TtrpcError(Code.ResourceExhausted, oversizeMessage(item.header.length, this.#maxMessageSize));
        const pending = this.#pending.get(item.header.streamId);
        if (pending) {
          pending.cleanup();
          pending.reject(err);
        }
        this.#streams.get(item.header.streamId)?.reject(err);
        continue;
      }
      const { frame } = item;
      if (frame.type === MessageType.data) this.#onStreamData(frame);
      else if (frame.type === MessageType.response) this.#onResponse(frame);
      // other types: ignored, as Go does, for future protocol versions
    }
  }

  #onResponse(frame: Frame): void {
    const pending = this.#pending.get(frame.streamId);
    const stream = this.#streams.get(frame.streamId);
    if (!pending && !stream) return; // timed out or cancelled earlier
    pending?.cleanup();
    let response;
    try {
      response = fromBinary(ResponseSchema, frame.payload);
    } catch (err) {
      const error = new TtrpcError(Code.Internal, `ttrpc: cannot decode response on stream ${frame.streamId}: ${String(err)}`);
      pending?.reject(error);
      stream?.reject(error);
      return;
    }
    if (response.status !== undefined && response.status.code !== Code.OK) {
      const error = errorFromStatus(response.status);
      pending?.reject(error);
      stream?.reject(error);
    } else {
      pending?.resolve(response.payload);
      stream?.resolve(response.payload);
    }
  }

  #onStreamData(frame: Frame): void {
    const stream = this.#streams.get(frame.streamId);
    if (!stream) return;
    if ((frame.flags & Flag.noData) === 0) {
      if (stream.inbox.closed) return;
      stream.inbox.push(frame.payload);
    }
    if ((frame.flags & Flag.remoteClosed) !== 0) stream.resolve(undefined);
  }

  #fail(err: TtrpcError): void {
    this.#closedError ??= err;
    for (const pending of [...this.#pending.values()]) {
      pending.cleanup();
      pending.reject(err);
    }
    for (const stream of [...this.#streams.values()]) stream.reject(err);
  }
}
