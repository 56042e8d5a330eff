/**
 * Usage — typed unary gRPC calls over a unix socket, driven by protobuf-es service descriptors:
 *   const conn = GrpcConnection.unix('/run/containerd/containerd.sock', { defaultTimeoutMs: 10_000 });
 *   const images = grpcServiceClient(conn, ImageService);   // any GenService from src/api/gen
 *   const res = await images.listImages({}, { timeoutMs: 5_000, metadata: { 'containerd-namespace': 'k8s.io' } });
 *   // failures throw GrpcCallError (error.ts): .method '/pkg.Svc/Method', .code (GrpcCode), .details
 *   conn.close();
 *
 * Built on @grpc/grpc-js's generic Client (no .proto loading at run time): requests and responses
 * are encoded with @bufbuild/protobuf from the generated descriptors. Only unary methods are
 * exposed; a streaming method on the descriptor is left out of the client's type and object.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, DescMethodUnary, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { GrpcCallError, GrpcCode } from './error.ts';

export interface GrpcCallOptions {
  /** Deadline relative to the call's start; sent to the server as grpc-timeout. Default: the connection's. */
  readonly timeoutMs?: number;
  /** Request metadata (headers); keys lower-case ASCII, values strings. */
  readonly metadata?: Readonly<Record<string, string | readonly string[]>>;
  /** Queue the call until the socket accepts connections instead of failing fast with Unavailable. */
  readonly waitForReady?: boolean;
  readonly signal?: AbortSignal;
}

export interface GrpcConnectionOptions {
  /** Deadline for calls that set none (default 30 s); 0 means no deadline. */
  readonly defaultTimeoutMs?: number;
  /** Largest response accepted (default 16 MiB, as containerd's own clients use). */
  readonly maxReceiveMessageBytes?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RECEIVE = 16 << 20;

/** `unix:///abs/path` (or `unix:/abs`) as given; a plain path becomes an absolute unix: target. */
export function unixTarget(socket: string): string {
  if (socket.startsWith('unix:')) return socket;
  if (/^[a-z][a-z0-9+.-]*:/i.test(socket)) throw new Error(`grpc: "${socket}" is not a unix socket address (want a path or unix:///path)`);
  return `unix://${path.resolve(socket)}`;
}

/** One channel to one server; share it between the service clients that talk to that server. */
export class GrpcConnection {
  readonly target: string;
  readonly defaultTimeoutMs: number;
  readonly #client: grpc.Client;

  private constructor(target: string, opts: GrpcConnectionOptions) {
    this.target = target;
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#client = new grpc.Client(target, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': opts.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE,
    });
  }

  static unix(socket: string, opts: GrpcConnectionOptions = {}): GrpcConnection {
    return new GrpcConnection(unixTarget(socket), opts);
  }

  /** Resolves once the channel is connected; rejects (Unavailable) if it is not within `timeoutMs`. */
  waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#client.waitForReady(Date.now() + timeoutMs, (err) => {
        if (err) reject(new GrpcCallError(`(connect ${this.target})`, GrpcCode.Unavailable, err.message, { cause: err }));
        else resolve();
      });
    });
  }

  /** One unary call of `method`, encoded and decoded with its descriptors. */
  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    options: GrpcCallOptions = {},
  ): Promise<MessageShape<O>> {
    const methodPath = `/${method.parent.typeName}/${method.name}`;
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(options.metadata ?? {})) {
      for (const v of typeof value === 'string' ? [value] : value) metadata.add(key, v);
    }
    if (options.waitForReady) metadata.setOptions({ waitForReady: true });
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    const callOptions: grpc.CallOptions = timeoutMs > 0 ? { deadline: Date.now() + timeoutMs } : {};
    const message = create(method.input, request);

    return new Promise((resolve, reject) => {
      if (options.signal?.aborted) {
        reject(new GrpcCallError(methodPath, GrpcCode.Canceled, 'aborted before the call started', { cause: options.signal.reason }));
        return;
      }
      let decodeError: unknown;
      const call = this.#client.makeUnaryRequest(
        methodPath,
        (value: typeof message) => Buffer.from(toBinary(method.input, value)),
        (bytes: Buffer) => {
          try {
            return fromBinary(method.output, bytes);
          } catch (err) {
            decodeError = err;
            throw err;
          }
        },
        message,
        metadata,
        callOptions,
        (err, response) => {
          options.signal?.removeEventListener('abort', onAbort);
          if (err) {
            const details =
              decodeError !== undefined ? `cannot decode ${method.output.typeName}: ${String(decodeError)}` : err.details || err.message;
            reject(new GrpcCallError(methodPath, err.code, details, { cause: decodeError ?? err }));
          } else if (response === undefined) {
            reject(new GrpcCallError(methodPath, GrpcCode.Internal, 'no response message'));
          } else {
            resolve(response);
          }
        },
      );
      const onAbort = (): void => call.cancel();
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  close(): void {
    this.#client.close();
  }
}

type UnaryMethods<S extends GenServiceMethods> = {
  [K in keyof S as S[K]['methodKind'] extends 'unary' ? K : never]: S[K];
};

/** Typed unary calls keyed by the descriptor's local names (`runPodSandbox`, `listImages` …). */
export type GrpcServiceClient<S extends GenServiceMethods> = {
  [K in keyof UnaryMethods<S>]: (
    request: MessageInitShape<S[K]['input']>,
    options?: GrpcCallOptions,
  ) => Promise<MessageShape<S[K]['output']>>;
};

export function grpcServiceClient<S extends GenServiceMethods>(conn: GrpcConnection, service: GenService<S>): GrpcServiceClient<S> {
  const out: Record<string, (request: never, options?: GrpcCallOptions) => Promise<unknown>> = {};
  for (const method of service.methods) {
    if (method.methodKind !== 'unary') continue;
    // DescMethod is not a discriminated union; methodKind 'unary' is what DescMethodUnary means.
    const unary = method as DescMethodUnary;
    out[method.localName] = (request, options) => conn.unary(unary, request, options);
  }
  return out as GrpcServiceClient<S>;
}
