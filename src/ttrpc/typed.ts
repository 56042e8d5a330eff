/**
 * Typed layer over the raw server and client, driven by protobuf-es service descriptors: the
 * generated `Task` (containerd.task.v2) or `Events` descriptors decode requests and encode
 * responses, and a service can be served under several wire names (v2 and v3 of the Task API
 * have byte-identical messages, so one implementation serves both).
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { CallOptions, TtrpcClient } from './client.ts';
import type { CallContext, MethodHandler, ServiceHandlers } from './server.ts';
import { Code, TtrpcError } from './status.ts';

type Shape<M> = M extends DescMessage ? MessageShape<M> : never;
type Init<M> = M extends DescMessage ? MessageInitShape<M> : never;

export type UnaryImpl<M extends GenServiceMethods[string]> = (
  request: Shape<M['input']>,
  ctx: CallContext,
) => Promise<Init<M['output']>> | Init<M['output']>;

/** Method implementations keyed by the descriptor's local names (`state`, `closeIO` …). */
export type ServiceImpl<S extends GenServiceMethods> = { [K in keyof S]: UnaryImpl<S[K]> };

/** Handlers for the methods `impl` provides; methods it leaves out answer Unimplemented like any unknown method. */
export function serviceHandlers<S extends GenServiceMethods>(desc: GenService<S>, impl: Partial<ServiceImpl<S>>): ServiceHandlers {
  const handlers = new Map<string, MethodHandler>();
  for (const method of desc.methods) {
    if (method.methodKind !== 'unary') continue;
    const fn = (impl as Record<string, ((req: unknown, ctx: CallContext) => unknown) | undefined>)[method.localName];
    if (fn === undefined) continue;
    handlers.set(method.name, unaryHandler(method, fn));
  }
  return handlers;
}

function unaryHandler(method: DescMethod, fn: (req: unknown, ctx: CallContext) => unknown): MethodHandler {
  return async (payload, ctx) => {
    let request;
    try {
      request = fromBinary(method.input, payload);
    } catch (err) {
      // The code and wording the Go server gives for a payload that does not parse.
      throw new TtrpcError(Code.Internal, `ttrpc: error unmarshalling payload: ${err instanceof Error ? err.message : String(err)}`);
    }
    const response = (await fn(request, ctx)) as MessageInitShape<DescMessage>;
    return toBinary(method.output, create(method.output, response));
  };
}

export type ServiceClient<S extends GenServiceMethods> = {
  [K in keyof S]: (request: Init<S[K]['input']>, options?: CallOptions) => Promise<Shape<S[K]['output']>>;
};

/** A typed client for `desc`, calling it under `serviceName` (default: the descriptor's own name). */
export function serviceClient<S extends GenServiceMethods>(
  client: TtrpcClient,
  desc: GenService<S>,
  serviceName: string = desc.typeName,
): ServiceClient<S> {
  const out: Record<string, (request: unknown, options?: CallOptions) => Promise<unknown>> = {};
  for (const method of desc.methods) {
    out[method.localName] = async (request, options) => {
      const payload = toBinary(method.input, create(method.input, request as MessageInitShape<DescMessage>));
      const answer = await client.call(serviceName, method.name, payload, options);
      try {
        return fromBinary(method.output, answer);
      } catch (err) {
        throw new TtrpcError(Code.Internal, `${serviceName}/${method.name}: cannot decode ${method.output.typeName}: ${String(err)}`);
      }
    };
  }
  return out as ServiceClient<S>;
}
