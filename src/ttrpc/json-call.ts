/** The work behind `outrigger ttrpc call`: resolve SERVICE/METHOD in our schema registry, JSON → protobuf, call, protobuf → JSON. */
import { fromJsonString, toBinary, toJsonString, fromBinary } from '@bufbuild/protobuf';
import { CliError, ExitCode } from '../cli/exit-codes.ts';
import { apiRegistry, findMethod, serviceNames } from '../api/registry.ts';
import { TtrpcClient } from './client.ts';
import { codeName, TtrpcError } from './status.ts';

export interface TtrpcCallInput {
  readonly socket: string;
  /** `service/method` */
  readonly method: string;
  readonly requestJson: string;
  readonly timeoutMs: number;
  readonly metadata: Readonly<Record<string, readonly string[]>>;
}

export async function runTtrpcCall(input: TtrpcCallInput): Promise<string> {
  const slash = input.method.lastIndexOf('/');
  if (slash <= 0 || slash === input.method.length - 1) {
    throw new CliError(`method must look like SERVICE/METHOD (e.g. containerd.task.v2.Task/State), not "${input.method}"`, ExitCode.usage);
  }
  const service = input.method.slice(0, slash);
  const methodName = input.method.slice(slash + 1);
  const method = findMethod(service, methodName);
  if (method === undefined) {
    throw new CliError(
      `unknown method ${service}/${methodName}; services known to outrigger: ${serviceNames().join(', ')}`,
      ExitCode.usage,
    );
  }
  const registry = apiRegistry();
  let request;
  try {
    request = fromJsonString(method.input, input.requestJson, { registry });
  } catch (err) {
    throw new CliError(`request is not valid JSON for ${method.input.typeName}: ${err instanceof Error ? err.message : String(err)}`, ExitCode.usage);
  }
  let client: TtrpcClient;
  try {
    client = await TtrpcClient.connect(input.socket, { timeoutMs: input.timeoutMs });
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err), ExitCode.failure);
  }
  try {
    const answer = await client.call(service, methodName, toBinary(method.input, request), {
      timeoutMs: input.timeoutMs,
      metadata: input.metadata,
    });
    const response = fromBinary(method.output, answer);
    return toJsonString(method.output, response, { registry, alwaysEmitImplicit: true, prettySpaces: 2 });
  } catch (err) {
    if (err instanceof TtrpcError) {
      throw new CliError(`${service}/${methodName}: ${codeName(err.code)} (${err.code}): ${err.message}`, ExitCode.failure);
    }
    throw err;
  } finally {
    await client.close();
  }
}
