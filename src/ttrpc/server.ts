/**
 * ttrpc server over unix sockets, wire-compatible with containerd/ttrpc (shim-protocol.md §1).
 *
 * Behaviour copied from the Go server: requests on one connection run concurrently and are
 * answered by stream id in completion order; even stream ids and ids that do not increase get
 * InvalidArgument; an undecodable Request gets InvalidArgument; unknown service or method gets
 * Unimplemented (`service X` / `method X`); a frame over 4 MiB is skipped and answered with
 * ResourceExhausted on its stream while the connection lives on; unknown message types are
 * ignored; timeout_nano becomes the handler's deadline (an AbortSignal) without cutting the
 * handler off; success responses carry no status field; peers whose uid or gid differ from ours
 * are closed without a word (UnixSocketRequireSameUser).
 *
 * Streaming methods (ttrpc ≥ 1.2 Data frames) follow Go's server too: the request payload is
 * the first message, a closing Data frame must not carry data, data after the client closed
 * its side fails the stream, and an OK server stream ends with a Data frame flagged
 * remote-closed|no-data. Nothing in containerd's Task API streams; this is for completeness.
 *
 * Beyond Go: a header whose reserved length byte is set drops that connection (logged once);
 * a per-connection cap on in-flight requests answers the excess with ResourceExhausted; during
 * graceful shutdown new requests get Unavailable while in-flight ones finish.
 */
import fs from 'node:fs';
import net from 'node:net';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { RequestSchema, ResponseSchema } from '../api/gen/ttrpc/request_pb.ts';
import type { Request, Response } from '../api/gen/ttrpc/request_pb.ts';
import type { Status } from '../api/gen/google/rpc/status_pb.ts';
import { StatusSchema } from '../api/gen/google/rpc/status_pb.ts';
import { peerCredentialsOfSocket } from '../sys/peer-credentials.ts';
import { encodeFrame, Flag, MAX_MESSAGE_SIZE, MessageType, oversizeMessage } from './frame.ts';
import type { Frame } from './frame.ts';
import { FrameDecoder, FrameProtocolError } from './frame-decoder.ts';
import { MessageQueue } from './message-queue.ts';
import { metadataFromKeyValues } from './metadata.ts';
import type { Metadata } from './metadata.ts';
import { Code, statusFromError, TtrpcError } from './status.ts';

export interface CallContext {
  readonly service: string;
  readonly method: string;
  readonly metadata: Metadata;
  /** Aborted when the caller's deadline passes (reason: a DeadlineExceeded TtrpcError) or the connection goes away. */
  readonly signal: AbortSignal;
  /** Epoch milliseconds of the caller's deadline, if it sent one. */
  readonly deadline: number | undefined;
}

/** Handles one unary method: request payload bytes in, response payload bytes out. */
export type MethodHandler = (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array>;

/** The server's end of a streaming call. */
export interface ServerStream {
  /**
   * Messages from the client: the request payload first (always for a method that is not
   * client-streaming, when non-empty otherwise, as Go does), then one per Data frame until the
   * client closes its side.
   */
  readonly messages: AsyncIterable<Uint8Array>;
  /** Sends one message as a Data frame (server-streaming methods only). */
  send(payload: Uint8Array): void;
}

/**
 * A streaming method (ttrpc ≥ 1.2). The handler's result ends the stream: for a
 * server-streaming method a Data frame flagged remote-closed (no-data when the result is
 * undefined), otherwise a Response frame; an error always ends it with a Response status.
 */
export interface StreamMethod {
  readonly clientStreaming: boolean;
  readonly serverStreaming: boolean;
  readonly handler: (stream: ServerStream, ctx: CallContext) => Promise<Uint8Array | undefined>;
}

/** Method name (as on the wire, e.g. "Create") → handler. */
export type ServiceHandlers = ReadonlyMap<string, MethodHandler | StreamMethod>;

/** pino-compatible subset: `log.warn({ fields }, 'message')`. */
export interface TtrpcLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface ServerOptions {
  /** Default 4 MiB, Go's limit. */
  readonly maxMessageSize?: number;
  /** Requests one connection may have running at once before the excess is refused. Default 1024. */
  readonly maxInFlightPerConnection?: number;
  /**
   * Refuse peers whose uid or gid differs from this process's effective ones (SO_PEERCRED), as
   * Go's UnixSocketRequireSameUser handshaker does. Default true.
   */
  readonly requireSameUser?: boolean;
  readonly logger?: TtrpcLogger;
}

/** Writes one logfmt-ish line per event to stderr (the shim's log FIFO in production). */
const stderrLogger: TtrpcLogger = {
  warn: (fields, message) => writeLogLine('warning', fields, message),
  error: (fields, message) => writeLogLine('error', fields, message),
};

function writeLogLine(level: string, fields: Record<string, unknown>, message: string): void {
  const extra = Object.entries(fields)
    .map(([k, v]) => `${k}=${JSON.stringify(v instanceof Error ? v.message : v)}`)
    .join(' ');
  process.stderr.write(`time="${new Date().toISOString()}" level=${level} msg=${JSON.stringify(message)} ${extra}\n`);
}

const DEFAULT_MAX_IN_FLIGHT = 1024;
/** Client messages a stream may hold unread before further Data frames are refused (Go buffers 64). */
const STREAM_RECEIVE_BUFFER = 64;
/** setTimeout cannot wait longer than this; longer deadlines are simply not armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class TtrpcServer {
  readonly #services = new Map<string, ServiceHandlers>();
  readonly #connections = new Set<ServerConnection>();
  readonly #listeners: net.Server[] = [];
  readonly #socketPaths: string[] = [];
  readonly maxMessageSize: number;
  readonly maxInFlightPerConnection: number;
  readonly requireSameUser: boolean;
  readonly logger: TtrpcLogger;
  #shuttingDown = false;

  constructor(options: ServerOptions = {}) {
    this.maxMessageSize = options.maxMessageSize ?? MAX_MESSAGE_SIZE;
    this.maxInFlightPerConnection = options.maxInFlightPerConnection ?? DEFAULT_MAX_IN_FLIGHT;
    this.requireSameUser = options.requireSameUser ?? true;
    this.logger = options.logger ?? stderrLogger;
  }

  /** Registers handlers under a full service name such as `containerd.task.v2.Task`. */
  register(serviceName: string, handlers: ServiceHandlers): void {
    if (this.#services.has(serviceName)) throw new Error(`ttrpc: service ${serviceName} is already registered`);
    this.#services.set(serviceName, handlers);
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Number of open client connections. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Creates a unix socket at `path` (owner-only 0600, like Go's NewSocket) and serves on it.
   * An existing file at the path is an error: deciding whether it is stale is the caller's job.
   */
  async listen(path: string): Promise<void> {
    const server = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      throw new Error(`ttrpc: listen on ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    // As Go's NewSocket: chmod right after bind. Connections are only accepted once the event
    // loop polls, after this; a peer that connect()ed in between still meets the uid check.
    try {
      fs.chmodSync(path, 0o600);
    } catch (err) {
      server.close();
      throw new Error(`ttrpc: chmod 0600 ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    this.#socketPaths.push(path);
    this.serve(server);
  }

  /** Serves on an already listening net.Server (e.g. the socket containerd's start handed over as fd 3). */
  serve(server: net.Server): void {
    if (this.#shuttingDown) throw new Error('ttrpc: server is shutting down');
    this.#listeners.push(server);
    server.on('connection', (socket) => this.#accept(socket));
    server.on('error', (err) => this.logger.error({ error: err }, 'ttrpc: listener error'));
  }

  #accept(socket: net.Socket): void {
    if (this.#shuttingDown) {
      socket.destroy();
      return;
    }
    if (this.requireSameUser) {
      const refusal = this.#peerRefusal(socket);
      if (refusal !== undefined) {
        this.logger.warn({ reason: refusal }, 'ttrpc: refusing connection');
        socket.destroy();
        return;
      }
    }
    const connection = new ServerConnection(this, socket, (name) => this.#services.get(name));
    this.#connections.add(connection);
    socket.once('close', () => this.#connections.delete(connection));
  }

  #peerRefusal(socket: net.Socket): string | undefined {
    try {
      const peer = peerCredentialsOfSocket(socket);
      const uid = process.geteuid?.() ?? -1;
      const gid = process.getegid?.() ?? -1;
      if (peer.uid !== uid || peer.gid !== gid) {
        return `peer pid ${peer.pid} has uid ${peer.uid} gid ${peer.gid}, this server runs as uid ${uid} gid ${gid}`;
      }
      return undefined;
    } catch (err) {
      return `cannot read peer credentials: ${String(err)}`;
    }
  }

  /**
   * Graceful shutdown: stop accepting, refuse new requests with Unavailable, let in-flight
   * requests finish and close each connection once it is idle. Resolves when all are closed.
   */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    // net.Server#close reports only once every connection has ended, so drain concurrently.
    const listeners = this.#closeListeners();
    await Promise.all([...this.#connections].map((c) => c.drainAndClose()));
    await listeners;
  }

  /** Immediate stop: aborts running handlers and drops every connection. */
  async close(): Promise<void> {
    this.#shuttingDown = true;
    const listeners = this.#closeListeners();
    await Promise.all([...this.#connections].map((c) => c.destroy()));
    await listeners;
  }

  async #closeListeners(): Promise<void> {
    const listeners = this.#listeners.splice(0);
    const closed = Promise.all(listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve()))));
    // Go's cleanup removes the socket file; do it now so nobody can connect to a server on its way out.
    for (const path of this.#socketPaths.splice(0)) fs.rmSync(path, { force: true });
    await closed;
  }
}

type ServiceLookup = (name: string) => ServiceHandlers | undefined;

class ServerConnection {
  readonly #server: TtrpcServer;
  readonly #socket: net.Socket;
  readonly #lookup: ServiceLookup;
  readonly #decoder: FrameDecoder;
  /** Running calls by stream id; `inbox` only for streaming methods. */
  readonly #inFlight = new Map<number, { readonly controller: AbortController; readonly inbox?: MessageQueue }>();
  #lastStreamId = 0;
  #draining: (() => void) | undefined;
  readonly #closed: Promise<void>;

  constructor(server: TtrpcServer, socket: net.Socket, lookup: ServiceLookup) {
    this.#server = server;
    this.#socket = socket;
    this.#lookup = lookup;
    this.#decoder = new FrameDecoder(server.maxMessageSize);
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => {
      // ECONNRESET and friends: the client went away; 'close' follows and cleans up.
    });
    socket.once('close', () => {
      const gone = new TtrpcError(Code.Canceled, 'ttrpc: connection closed');
      for (const call of this.#inFlight.values()) {
        call.controller.abort(gone);
        call.inbox?.fail(gone);
      }
      this.#inFlight.clear();
    });
  }

  #onData(chunk: Buffer): void {
    let items;
    try {
      items = this.#decoder.push(chunk);
    } catch (err) {
      if (err instanceof FrameProtocolError) {
        this.#server.logger.warn({ offset: err.offset, error: err }, 'ttrpc: malformed frame, dropping connection');
        this.#socket.destroy();
        return;
      }
      throw err;
    }
    for (const item of items) {
      if (item.kind === 'oversized') {
        this.#sendStatus(item.header.streamId, Code.ResourceExhausted, oversizeMessage(item.header.length, this.#server.maxMessageSize));
      } else {
        this.#onFrame(item.frame);
      }
      if (this.#socket.destroyed) return;
    }
  }

  #onFrame(frame: Frame): void {
    const { streamId } = frame;
    if (streamId % 2 !== 1) {
      this.#sendStatus(streamId, Code.InvalidArgument, 'StreamID must be odd for client initiated streams');
      return;
    }
    if (frame.type === MessageType.data) {
      this.#onStreamData(frame);
      return;
    }
    if (frame.type !== MessageType.request) return; // Go ignores unknown types for future compatibility
    if (streamId <= this.#lastStreamId) {
      this.#sendStatus(streamId, Code.InvalidArgument, 'StreamID cannot be re-used and must increment');
      return;
    }
    this.#lastStreamId = streamId;
    let request: Request;
    try {
      request = fromBinary(RequestSchema, frame.payload);
    } catch (err) {
      this.#sendStatus(streamId, Code.InvalidArgument, `unmarshal request error: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (this.#draining !== undefined || this.#server.shuttingDown) {
      this.#sendStatus(streamId, Code.Unavailable, 'ttrpc: server shutting down');
      return;
    }
    if (this.#inFlight.size >= this.#server.maxInFlightPerConnection) {
      this.#sendStatus(
        streamId,
        Code.ResourceExhausted,
        `ttrpc: too many requests in flight on this connection (limit ${this.#server.maxInFlightPerConnection})`,
      );
      return;
    }
    const handlers = this.#lookup(request.service);
    if (handlers === undefined) {
      this.#sendStatus(streamId, Code.Unimplemented, `service ${request.service}`);
      return;
    }
    const handler = handlers.get(request.method);
    if (handler === undefined) {
      this.#sendStatus(streamId, Code.Unimplemented, `method ${request.method}`);
      return;
    }
    this.#run(streamId, request, frame.flags, handler).catch((err: unknown) => {
      // #run answers every handler outcome itself; reaching here is a bug, not a reason to crash a shim.
      this.#server.logger.error({ service: request.service, method: request.method, error: err }, 'ttrpc: request failed internally');
      this.#inFlight.delete(streamId);
      this.#sendStatus(streamId, Code.Internal, 'ttrpc: internal server error');
      this.#maybeFinishDrain();
    });
  }

  /** A Data frame from the client: one more message for a streaming call, or its end. */
  #onStreamData(frame: Frame): void {
    const { streamId, flags, payload } = frame;
    const call = this.#inFlight.get(streamId);
    if (call === undefined) {
      this.#sendStatus(streamId, Code.InvalidArgument, 'StreamID is no longer active');
      return;
    }
    const inbox = call.inbox;
    if (inbox === undefined) return; // a unary call takes no data
    if ((flags & Flag.noData) === 0) {
      if (inbox.closed) return this.#abortStream(streamId, 'data handling error: ttrpc: stream closed');
      if (inbox.size >= STREAM_RECEIVE_BUFFER) return this.#abortStream(streamId, 'data handling error: ttrpc: stream buffer full');
      inbox.push(payload);
    }
    if ((flags & Flag.remoteClosed) !== 0) {
      inbox.end();
      // Go's rule: the closing frame must not carry data (it was delivered, but the stream fails).
      if (payload.length > 0) this.#abortStream(streamId, 'data close message cannot include data');
    }
  }

  /** Ends a streaming call early with InvalidArgument; whatever its handler returns later is dropped. */
  #abortStream(streamId: number, message: string): void {
    const call = this.#inFlight.get(streamId);
    if (call === undefined) return;
    this.#inFlight.delete(streamId);
    const error = new TtrpcError(Code.InvalidArgument, message);
    call.controller.abort(error);
    call.inbox?.fail(error);
    this.#sendStatus(streamId, Code.InvalidArgument, message);
    this.#maybeFinishDrain();
  }

  async #run(streamId: number, request: Request, requestFlags: number, method: MethodHandler | StreamMethod): Promise<void> {
    const controller = new AbortController();
    const stream = typeof method === 'function' ? undefined : method;
    const inbox = stream ? new MessageQueue() : undefined;
    const call = inbox ? { controller, inbox } : { controller };
    this.#inFlight.set(streamId, call);
    if (stream && inbox) {
      // A deadline or a dropped connection ends the handler's `for await` with that error.
      controller.signal.addEventListener('abort', () => inbox.fail(controller.signal.reason as Error), { once: true });
      if (request.payload.length > 0 || !stream.clientStreaming) inbox.push(request.payload);
      if (!stream.clientStreaming || (requestFlags & Flag.remoteClosed) !== 0) inbox.end();
    }
    let timer: NodeJS.Timeout | undefined;
    let deadline: number | undefined;
    if (request.timeoutNano !== 0n) {
      // Like context.WithTimeout: a negative timeout is a deadline already passed.
      const ms = Math.max(0, Number(request.timeoutNano / 1_000_000n));
      deadline = Date.now() + ms;
      if (ms <= MAX_TIMER_MS) {
        timer = setTimeout(() => controller.abort(new TtrpcError(Code.DeadlineExceeded, 'context deadline exceeded')), ms);
      }
    }
    const ctx: CallContext = {
      service: request.service,
      method: request.method,
      metadata: metadataFromKeyValues(request.metadata),
      signal: controller.signal,
      deadline,
    };
    let payload: Uint8Array | undefined;
    let status: Status | undefined;
    try {
      if (stream && inbox) {
        const server: ServerStream = {
          messages: inbox,
          send: (message) => this.#sendStreamData(streamId, call, stream, message),
        };
        payload = await stream.handler(server, ctx);
      } else {
        payload = await (method as MethodHandler)(request.payload, ctx);
      }
    } catch (err) {
      status = statusFromError(err);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    if (this.#inFlight.get(streamId) !== call) return; // connection closed or stream aborted meanwhile
    this.#inFlight.delete(streamId);
    if (payload !== undefined && !(payload instanceof Uint8Array)) {
      status = create(StatusSchema, { code: Code.Internal, message: `ttrpc: ${request.service}/${request.method} returned ${typeof payload}, not bytes` });
      payload = undefined;
    }
    if (status === undefined && stream?.serverStreaming) {
      // Go ends an OK server stream with a closing Data frame rather than a Response.
      const flags = Flag.remoteClosed | (payload === undefined ? Flag.noData : 0);
      const data = payload ?? new Uint8Array(0);
      if (data.length <= this.#server.maxMessageSize) this.#write(streamId, MessageType.data, flags, data);
      else this.#sendOversized(streamId, request, data.length);
    } else {
      const body = toBinary(ResponseSchema, create(ResponseSchema, status === undefined ? { payload: payload ?? new Uint8Array(0) } : { status }));
      if (body.length <= this.#server.maxMessageSize) this.#write(streamId, MessageType.response, 0, body);
      else this.#sendOversized(streamId, request, body.length);
    }
    this.#maybeFinishDrain();
  }

  /** Go logs and closes the connection when its answer is too big; failing just this call is kinder. */
  #sendOversized(streamId: number, request: Request, length: number): void {
    this.#server.logger.error({ service: request.service, method: request.method, length }, 'ttrpc: response exceeds the maximum message size');
    this.#sendStatus(streamId, Code.ResourceExhausted, oversizeMessage(length, this.#server.maxMessageSize));
  }

  #sendStreamData(streamId: number, call: object, stream: StreamMethod, message: Uint8Array): void {
    if (!stream.serverStreaming) throw new TtrpcError(Code.Internal, 'ttrpc: send on a method that is not server-streaming');
    if (this.#inFlight.get(streamId) !== call) throw new TtrpcError(Code.Canceled, 'ttrpc: stream is finished');
    if (message.length > this.#server.maxMessageSize) {
      throw new TtrpcError(Code.ResourceExhausted, oversizeMessage(message.length, this.#server.maxMessageSize));
    }
    this.#write(streamId, MessageType.data, 0, message);
  }

  #sendStatus(streamId: number, code: number, message: string): void {
    this.#send(streamId, create(ResponseSchema, { status: create(StatusSchema, { code, message }) }));
  }

  #send(streamId: number, response: Response): void {
    this.#write(streamId, MessageType.response, 0, toBinary(ResponseSchema, response));
  }

  #write(streamId: number, type: number, flags: number, payload: Uint8Array): void {
    if (this.#socket.destroyed || !this.#socket.writable) return;
    this.#socket.write(encodeFrame({ streamId, type, flags, payload }));
  }

  #maybeFinishDrain(): void {
    if (this.#draining !== undefined && this.#inFlight.size === 0) this.#draining();
  }

  drainAndClose(): Promise<void> {
    if (this.#draining === undefined) {
      const idle = new Promise<void>((resolve) => {
        this.#draining = resolve;
      });
      this.#maybeFinishDrain();
      void idle.then(() => this.#socket.end());
    }
    return this.#closed;
  }

  destroy(): Promise<void> {
    this.#socket.destroy();
    return this.#closed;
  }
}
