/**
 * src/grpc against a real grpc-js server on a unix socket, serving containerd.task.v2.Task from
 * its generated descriptor: typed round trip with metadata, errors that name the method and carry
 * the server's status, deadlines, aborts, and a socket nobody listens on.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StateResponseSchema, Task } from '../src/api/gen/containerd/task/v2/shim_pb.ts';
import type { StateRequest } from '../src/api/gen/containerd/task/v2/shim_pb.ts';
import { GrpcConnection, grpcServiceClient, unixTarget } from '../src/grpc/client.ts';
import { GrpcCallError, GrpcCode } from '../src/grpc/error.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-grpc-'));
const socket = path.join(dir, 'test.sock');
const server = new grpc.Server();
let conn: GrpcConnection;

function method(name: string): grpc.MethodDefinition<unknown, unknown> {
  const desc = Task.methods.find((m) => m.name === name);
  if (!desc) throw new Error(name);
  return {
    path: `/${Task.typeName}/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (v) => Buffer.from(toBinary(desc.input, v as never)),
    requestDeserialize: (b: Buffer) => fromBinary(desc.input, b),
    responseSerialize: (v) => Buffer.from(toBinary(desc.output, v as never)),
    responseDeserialize: (b: Buffer) => fromBinary(desc.output, b),
  };
}

beforeAll(async () => {
  server.addService(
    { State: method('State'), Pids: method('Pids'), Delete: method('Delete') },
    {
      State: (call: grpc.ServerUnaryCall<StateRequest, unknown>, cb: grpc.sendUnaryData<unknown>) =>
        cb(null, create(StateResponseSchema, { id: call.request.id, bundle: String(call.metadata.get('x-bundle')[0] ?? ''), pid: 42 })),
      Pids: (_call: unknown, cb: grpc.sendUnaryData<unknown>) =>
        cb({ code: grpc.status.NOT_FOUND, details: 'container "c1": not found' } as grpc.ServiceError),
      // Never answers: the client's deadline or abort must end the call.
      Delete: () => undefined,
    },
  );
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  conn = GrpcConnection.unix(socket, { defaultTimeoutMs: 5_000 });
});

afterAll(() => {
  conn?.close();
  server.forceShutdown();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('grpcServiceClient', () => {
  it('makes typed unary calls with metadata', async () => {
    const task = grpcServiceClient(conn, Task);
    await conn.waitForReady(5_000);
    const res = await task.state({ id: 'c1' }, { metadata: { 'x-bundle': '/run/b/c1' } });
    expect(res.$typeName).toBe('containerd.task.v2.StateResponse');
    expect(res).toMatchObject({ id: 'c1', bundle: '/run/b/c1', pid: 42 });
  });

  it('raises the server status with the method path', async () => {
    const err = await grpcServiceClient(conn, Task)
      .pids({ id: 'c1' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrpcCallError);
    const e = err as GrpcCallError;
    expect(e.code).toBe(GrpcCode.NotFound);
    expect(e.method).toBe('/containerd.task.v2.Task/Pids');
    expect(e.details).toBe('container "c1": not found');
    expect(e.message).toBe('grpc /containerd.task.v2.Task/Pids: NotFound: container "c1": not found');
  });

  it('reports Unimplemented for a method the server lacks', async () => {
    const err = (await grpcServiceClient(conn, Task)
      .connect({ id: 'c1' })
      .catch((e: unknown) => e)) as GrpcCallError;
    expect(err.code).toBe(GrpcCode.Unimplemented);
    expect(err.method).toBe('/containerd.task.v2.Task/Connect');
  });

  it('ends a call at its deadline with DeadlineExceeded', async () => {
    const err = (await grpcServiceClient(conn, Task)
      .delete({ id: 'c1' }, { timeoutMs: 200 })
      .catch((e: unknown) => e)) as GrpcCallError;
    expect(err).toBeInstanceOf(GrpcCallError);
    expect(err.code).toBe(GrpcCode.DeadlineExceeded);
    expect(err.method).toBe('/containerd.task.v2.Task/Delete');
  });

  it('cancels a call when its signal aborts', async () => {
    const ac = new AbortController();
    const pending = grpcServiceClient(conn, Task)
      .delete({ id: 'c1' }, { signal: ac.signal, timeoutMs: 0 })
      .catch((e: unknown) => e);
    setTimeout(() => ac.abort(), 50);
    const err = (await pending) as GrpcCallError;
    expect(err.code).toBe(GrpcCode.Canceled);
  });

  it('fails fast with Unavailable when nothing listens on the socket', async () => {
    const nobody = GrpcConnection.unix(path.join(dir, 'nobody.sock'));
    try {
      const err = (await grpcServiceClient(nobody, Task)
        .state({ id: 'x' })
        .catch((e: unknown) => e)) as GrpcCallError;
      expect(err.code).toBe(GrpcCode.Unavailable);
      expect(err.method).toBe('/containerd.task.v2.Task/State');
    } finally {
      nobody.close();
    }
  });
});

describe('unixTarget', () => {
  it('turns paths into unix: targets and refuses other schemes', () => {
    expect(unixTarget('/run/x.sock')).toBe('unix:///run/x.sock');
    expect(unixTarget('unix:///run/x.sock')).toBe('unix:///run/x.sock');
    expect(path.isAbsolute(unixTarget('rel.sock').slice('unix://'.length))).toBe(true);
    expect(() => unixTarget('tcp://127.0.0.1:1')).toThrow(/not a unix socket address/);
  });
});
