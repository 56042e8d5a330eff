/**
 * Server-streaming gRPC calls over a unix socket, the counterpart of client.ts (which exposes
 * unary methods only): containerd's content service answers List and Read as streams.
 *
 *   const stream = new GrpcStreamChannel('/run/containerd/containerd.sock');
 *   for await (const page of stream.call(Content.method.list, {}, { metadata: { 'containerd-namespace': 'k8s.io' } })) …
 *   stream.close();
 *
 * Messages are encoded with @bufbuild/protobuf from the generated descriptors; failures throw
 * GrpcCallError (error.ts) naming the method.
 */
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, DescMethodServerStreaming, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import { unixTarget, type GrpcCallOptions } from './client.ts';
import { GrpcCallError, GrpcCode } from './error.ts';

const DEFAULT_MAX_RECEIVE = 16 << 20;

export class GrpcStreamChannel {
  readonly target: string;
  readonly #client: grpc.Client;

  constructor(socket: string, maxReceiveMessageBytes = DEFAULT_MAX_RECEIVE) {
    this.target = unixTarget(socket);
    this.#client = new grpc.Client(this.target, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': maxReceiveMessageBytes,
    });
  }

  /** Yields each response message; a failed call or undecodable message throws GrpcCallError. */
  async *call<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    request: MessageInitShape<I>,
    options: Omit<GrpcCallOptions, 'waitForReady'> = {},
  ): AsyncGenerator<MessageShape<O>> {
    const methodPath = `/${method.parent.typeName}/${method.name}`;
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(options.metadata ?? {})) {
      for (const v of typeof value === 'string' ? [value] : value) metadata.add(key, v);
    }
    const callOptions: grpc.CallOptions = options.timeoutMs !== undefined && options.timeoutMs > 0 ? { deadline: Date.now() + options.timeoutMs } : {};
    const message = create(method.input, request);
    const call = this.#client.makeServerStreamRequest(
      methodPath,
      (value: typeof message) => Buffer.from(toBinary(method.input, value)),
      (bytes: Buffer) => fromBinary(method.output, bytes),
      message,
      metadata,
      callOptions,
    );
    const onAbort = (): void => call.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const response of call) yield response as MessageShape<O>;
    } catch (error) {
      const e = error as Partial<grpc.ServiceError>;
      throw new GrpcCallError(methodPath, e.code ?? GrpcCode.Unknown, e.details || (error as Error).message, { cause: error });
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  close(): void {
    this.#client.close();
  }
}
