/**
 * Our ttrpc server and client over real unix sockets: the Task service under both names, Go's
 * protocol answers (Unimplemented, InvalidArgument for bad stream ids, ResourceExhausted for
 * oversized frames with the connection kept), concurrency on one connection, deadlines,
 * metadata, the in-flight cap, graceful shutdown, socket mode and the same-uid rule.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Task } from '../src/api/gen/containerd/task/v2/shim_pb.ts';
import { Task as TaskV3 } from '../src/api/gen/containerd/task/v3/shim_pb.ts';
import { Status as TaskStatus } from '../src/api/gen/containerd/types/task/task_pb.ts';
import { RequestSchema, ResponseSchema } from '../src/api/gen/ttrpc/request_pb.ts';
import { registerTaskService, TASK_SERVICE_V2, TASK_SERVICE_V3 } from '../src/api/task-service.ts';
import { goZeroTimestamp } from '../src/api/timestamp.ts';
import { TtrpcClient } from '../src/ttrpc/client.ts';
import { encodeFrame, MAX_MESSAGE_SIZE, MessageType } from '../src/ttrpc/frame.ts';
import type { Frame } from '../src/ttrpc/frame.ts';
import { FrameDecoder } from '../src/ttrpc/frame-decoder.ts';
import { TtrpcServer } from '../src/ttrpc/server.ts';
import type { MethodHandler, TtrpcLogger } from '../src/ttrpc/server.ts';
import { Code, notFound, TtrpcError } from '../src/ttrpc/status.ts';
import { serviceClient } from '../src/ttrpc/typed.ts';

let dir: string;
let socketPath: string;
let server: TtrpcServer;
let logs: string[];
const clients: TtrpcClient[] = [];

const logger: TtrpcLogger = {
  warn: (_fields, message) => logs.push(`warn ${message}`),
  error: (_fields, message) => logs.push(`error ${message}`),
};

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttrpc-test-'));
  socketPath = path.join(dir, 's.sock');
  logs = [];
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function connect(): Promise<TtrpcClient> {
  const c = await TtrpcClient.connect(`unix://${socketPath}`);
  clients.push(c);
  return c;
}

/** A latch a handler can wait on. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

const echo: MethodHandler = async (payload) => payload;

/** A client speaking raw frames, for protocol cases our own client never produces. */
async function rawConnection(p = socketPath) {
  const socket = net.createConnection(p);
  await once(socket, 'connect');
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const item of decoder.push(chunk)) if (item.kind === 'frame') frames.push(item.frame);
    wake?.();
  });
  socket.on('error', () => {});
  const closed = once(socket, 'close').then(() => true);
  return {
    socket,
    closed,
    write(bytes: Uint8Array) {
      socket.write(bytes);
    },
    request(streamId: number, init: Parameters<typeof create<typeof RequestSchema>>[1], type: number = MessageType.request) {
      socket.write(encodeFrame({ streamId, type, flags: 0, payload: toBinary(RequestSchema, create(RequestSchema, init)) }));
    },
    async next(): Promise<Frame> {
      while (frames.length === 0) {
        const woke = new Promise<void>((resolve) => {
          wake = resolve;
        });
        const ended = await Promise.race([woke.then(() => false), closed]);
        if (ended && frames.length === 0) throw new Error('connection closed before a frame arrived');
      }
      return frames.shift()!;
    },
  };
}

function statusOf(frame: Frame): { code: number; message: string } {
  const r = fromBinary(ResponseSchema, frame.payload);
  return { code: r.status?.code ?? 0, message: r.status?.message ?? '' };
}

async function startServer(opts: ConstructorParameters<typeof TtrpcServer>[0] = {}): Promise<TtrpcServer> {
  server = new TtrpcServer({ logger, ...opts });
  await server.listen(socketPath);
  return server;
}

describe('Task service over a unix socket', () => {
  it('answers State and Connect under containerd.task.v2.Task and containerd.task.v3.Task', async () => {
    await startServer();
    registerTaskService(server, {
      state: (req) => ({ id: req.id, execId: req.execId, pid: 42, status: TaskStatus.RUNNING, exitedAt: goZeroTimestamp() }),
      connect: () => ({ shimPid: process.pid, taskPid: 42 }),
    });
    const client = await connect();
    for (const task of [serviceClient(client, Task), serviceClient(client, TaskV3), serviceClient(client, Task, TASK_SERVICE_V3)]) {
      const state = await task.state({ id: 'c1' });
      expect([state.id, state.pid, state.status, state.exitedAt?.seconds]).toEqual(['c1', 42, TaskStatus.RUNNING, -62135596800n]);
      expect((await task.connect({ id: 'c1' })).shimPid).toBe(process.pid);
    }
    expect(TASK_SERVICE_V2).toBe(Task.typeName);
  });

  it('answers Unimplemented for unknown services, unknown methods and RPCs the implementation leaves out', async () => {
    await startServer();
    registerTaskService(server, { state: () => ({}) });
    const client = await connect();
    await expect(client.call('no.such.Service', 'State', new Uint8Array())).rejects.toMatchObject({ code: Code.Unimplemented, message: 'service no.such.Service' });
    await expect(client.call(TASK_SERVICE_V2, 'Nope', new Uint8Array())).rejects.toMatchObject({ code: Code.Unimplemented, message: 'method Nope' });
    await expect(serviceClient(client, Task).pause({ id: 'x' })).rejects.toMatchObject({ code: Code.Unimplemented, message: 'method Pause' });
  });

  it('maps handler errors to status codes and back', async () => {
    await startServer();
    const codes = [Code.NotFound, Code.AlreadyExists, Code.FailedPrecondition, Code.InvalidArgument, Code.Unimplemented, Code.Unavailable, Code.DeadlineExceeded, Code.Internal];
    server.register(
      'test.Errors',
      new Map<string, MethodHandler>([
        ['Coded', async (p) => {
          throw new TtrpcError(p[0]!, `failed with ${p[0]}`);
        }],
        ['Plain', async () => {
          throw new Error('cannot delete a running process');
        }],
        ['Missing', async () => {
          throw notFound('container not created');
        }],
      ]),
    );
    const client = await connect();
    for (const code of codes) {
      await expect(client.call('test.Errors', 'Coded', Uint8Array.of(code))).rejects.toMatchObject({ code, message: `failed with ${code}` });
    }
    await expect(client.call('test.Errors', 'Plain', new Uint8Array())).rejects.toMatchObject({ code: Code.Unknown, message: 'cannot delete a running process' });
    await expect(client.call('test.Errors', 'Missing', new Uint8Array())).rejects.toMatchObject({ code: Code.NotFound, message: 'container not created: not found' });
  });

  it('reports a payload that does not parse as Internal, as Go does', async () => {
    await startServer();
    registerTaskService(server, { state: () => ({}) });
    const client = await connect();
    await expect(client.call(TASK_SERVICE_V2, 'State', Uint8Array.of(0x0a, 0x09, 0x61))).rejects.toMatchObject({
      code: Code.Internal,
      message: expect.stringMatching(/^ttrpc: error unmarshalling payload: /),
    });
  });
});

describe('concurrency, deadlines, metadata', () => {
  it('keeps serving other calls on the same connection while one blocks, answering out of order', async () => {
    await startServer();
    const exit = gate();
    let waiting = 0;
    registerTaskService(server, {
      wait: async () => {
        waiting++;
        await exit.wait;
        return { exitStatus: 3, exitedAt: goZeroTimestamp() };
      },
      state: (req) => ({ id: req.id }),
    });
    const task = serviceClient(await connect(), Task);
    const wait = task.wait({ id: 'c1' });
    const states = await Promise.all(Array.from({ length: 200 }, (_, i) => task.state({ id: `c${i}` })));
    expect(states.map((s) => s.id)).toEqual(Array.from({ length: 200 }, (_, i) => `c${i}`));
    expect(waiting).toBe(1);
    exit.open();
    expect((await wait).exitStatus).toBe(3);
  });

  it('turns timeout_nano into the handler deadline; a handler that gives up answers DeadlineExceeded', async () => {
    await startServer();
    let seenDeadline: number | undefined;
    server.register(
      'test.Slow',
      new Map<string, MethodHandler>([
        ['Sleep', (_p, ctx) => {
          seenDeadline = ctx.deadline;
          return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
        }],
        ['Ignore', async (_p, ctx) => {
          await new Promise((r) => setTimeout(r, 100));
          return Uint8Array.of(ctx.signal.aborted ? 1 : 0);
        }],
      ]),
    );
    const raw = await rawConnection();
    const before = Date.now();
    raw.request(1, { service: 'test.Slow', method: 'Sleep', timeoutNano: 50_000_000n });
    expect(statusOf(await raw.next())).toEqual({ code: Code.DeadlineExceeded, message: 'context deadline exceeded' });
    expect(seenDeadline).toBeGreaterThanOrEqual(before + 50);
    // Like Go, a handler that ignores the deadline still gets its answer through.
    raw.request(3, { service: 'test.Slow', method: 'Ignore', timeoutNano: 1n });
    const r = fromBinary(ResponseSchema, (await raw.next()).payload);
    expect([r.status, [...r.payload]]).toEqual([undefined, [1]]);
    raw.socket.destroy();
  });

  it('client timeouts send timeout_nano and fail locally with DeadlineExceeded', async () => {
    await startServer();
    let timeoutNano = 0n;
    server.register('test.Slow', new Map<string, MethodHandler>([['Hang', (_p, ctx) => {
      timeoutNano = BigInt((ctx.deadline ?? 0) - Date.now());
      return new Promise(() => {});
    }]]));
    const client = await connect();
    await expect(client.call('test.Slow', 'Hang', new Uint8Array(), { timeoutMs: 30 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    expect(timeoutNano).toBeGreaterThan(0n);
    expect(client.pendingCount).toBe(0);
  });

  it('passes metadata with lower-cased keys and repeated values', async () => {
    await startServer();
    server.register('test.Md', new Map<string, MethodHandler>([['Echo', async (_p, ctx) => new TextEncoder().encode(JSON.stringify([...ctx.metadata]))]]));
    const client = await connect();
    const out = await client.call('test.Md', 'Echo', new Uint8Array(), { metadata: { 'Containerd-Namespace-Ttrpc': 'default', 'x-multi': ['a', 'b'] } });
    expect(JSON.parse(new TextDecoder().decode(out))).toEqual([['containerd-namespace-ttrpc', ['default']], ['x-multi', ['a', 'b']]]);
  });

  it('caps requests in flight per connection with ResourceExhausted, and recovers', async () => {
    await startServer({ maxInFlightPerConnection: 2 });
    const release = gate();
    server.register('test.Block', new Map<string, MethodHandler>([['Block', async () => {
      await release.wait;
      return new Uint8Array();
    }], ['Echo', echo]]));
    const client = await connect();
    const blocked = [client.call('test.Block', 'Block', new Uint8Array()), client.call('test.Block', 'Block', new Uint8Array())];
    await expect(client.call('test.Block', 'Echo', Uint8Array.of(1))).rejects.toMatchObject({ code: Code.ResourceExhausted });
    // another connection has its own budget
    expect([...(await (await connect()).call('test.Block', 'Echo', Uint8Array.of(2)))]).toEqual([2]);
    release.open();
    await Promise.all(blocked);
    expect([...(await client.call('test.Block', 'Echo', Uint8Array.of(3)))]).toEqual([3]);
  });
});

describe('protocol edge cases, as the Go server answers them', () => {
  it('uses stream ids 1, 3, 5 … from our client', async () => {
    const seen: number[] = [];
    const plain = net.createServer((s) => {
      const d = new FrameDecoder();
      s.on('data', (c: Buffer) => {
        for (const item of d.push(c)) {
          if (item.kind !== 'frame') continue;
          seen.push(item.frame.streamId);
          s.write(encodeFrame({ streamId: item.frame.streamId, type: MessageType.response, flags: 0, payload: new Uint8Array() }));
        }
      });
    });
    server = new TtrpcServer({ logger });
    plain.listen(socketPath);
    await once(plain, 'listening');
    const client = await connect();
    for (let i = 0; i < 4; i++) await client.call('a.B', 'C', new Uint8Array());
    expect(seen).toEqual([1, 3, 5, 7]);
    await client.close();
    plain.close();
  });

  it('rejects even and re-used stream ids and undecodable requests with InvalidArgument, ignores unknown types', async () => {
    await startServer();
    server.register('test.Echo', new Map([['Echo', echo]]));
    const raw = await rawConnection();
    const expectStatus = async (streamId: number, code: number, message: string | RegExp) => {
      const f = await raw.next();
      expect(f.streamId).toBe(streamId);
      expect(f.type).toBe(MessageType.response);
      const st = statusOf(f);
      expect(st.code).toBe(code);
      expect(st.message).toMatch(message);
    };
    raw.request(2, { service: 'test.Echo', method: 'Echo' });
    await expectStatus(2, Code.InvalidArgument, 'StreamID must be odd for client initiated streams');
    raw.request(5, { service: 'test.Echo', method: 'Echo', payload: Uint8Array.of(7) });
    await expectStatus(5, Code.OK, '');
    raw.request(3, { service: 'test.Echo', method: 'Echo' });
    await expectStatus(3, Code.InvalidArgument, 'StreamID cannot be re-used and must increment');
    raw.write(encodeFrame({ streamId: 7, type: MessageType.request, flags: 0, payload: Uint8Array.of(0x0a, 0x09, 0x61) }));
    await expectStatus(7, Code.InvalidArgument, /^unmarshal request error: /);
    raw.write(encodeFrame({ streamId: 9, type: 7, flags: 0, payload: Uint8Array.of(1, 2, 3) }));
    raw.write(encodeFrame({ streamId: 11, type: MessageType.data, flags: 0, payload: new Uint8Array() }));
    await expectStatus(11, Code.InvalidArgument, 'StreamID is no longer active');
    raw.socket.destroy();
  });

  it('answers an oversized frame with ResourceExhausted on its stream and keeps the connection', async () => {
    await startServer();
    server.register('test.Echo', new Map([['Echo', echo]]));
    const raw = await rawConnection();
    const length = MAX_MESSAGE_SIZE + 1;
    raw.write(encodeFrame({ streamId: 1, type: MessageType.request, flags: 0, payload: new Uint8Array(length) }));
    const f = await raw.next();
    expect([f.streamId, statusOf(f)]).toEqual([1, { code: Code.ResourceExhausted, message: `message length ${length} exceed maximum message size of 4194304` }]);
    raw.request(3, { service: 'test.Echo', method: 'Echo', payload: Uint8Array.of(4) });
    const ok = fromBinary(ResponseSchema, (await raw.next()).payload);
    expect([ok.status, [...ok.payload]]).toEqual([undefined, [4]]);
    raw.socket.destroy();
  });

  it('fails a call whose response would exceed 4 MiB with ResourceExhausted, logs it, and keeps the connection', async () => {
    await startServer();
    server.register('test.Big', new Map<string, MethodHandler>([['Big', async (p) => new Uint8Array(p[0] === 1 ? MAX_MESSAGE_SIZE : 10)]]));
    const client = await connect();
    // a payload of exactly 4 MiB no longer fits once wrapped in a Response
    await expect(client.call('test.Big', 'Big', Uint8Array.of(1))).rejects.toMatchObject({
      code: Code.ResourceExhausted,
      message: `message length ${MAX_MESSAGE_SIZE + 5} exceed maximum message size of ${MAX_MESSAGE_SIZE}`,
    });
    expect(logs).toEqual(['error ttrpc: response exceeds the maximum message size']);
    expect((await client.call('test.Big', 'Big', Uint8Array.of(0))).length).toBe(10);
  });

  it('serves a request of exactly 4 MiB and refuses to send a bigger one from the client', async () => {
    await startServer();
    server.register('test.Size', new Map<string, MethodHandler>([['Len', async (p) => new TextEncoder().encode(String(p.length))]]));
    const client = await connect();
    const service = 'test.Size';
    const method = 'Len';
    // Request = 0a len service, 12 len method, 1a varint(len) payload (a 4-byte varint for ~4 MiB):
    // pick the payload so the frame data is exactly 4 MiB.
    const overhead = 2 + service.length + 2 + method.length + 1 + 4;
    const payload = new Uint8Array(MAX_MESSAGE_SIZE - overhead);
    expect(toBinary(RequestSchema, create(RequestSchema, { service, method, payload })).length).toBe(MAX_MESSAGE_SIZE);
    expect(new TextDecoder().decode(await client.call(service, method, payload))).toBe(String(payload.length));
    await expect(client.call(service, method, new Uint8Array(MAX_MESSAGE_SIZE))).rejects.toMatchObject({ code: Code.ResourceExhausted });
  });
});

describe('socket, peers and shutdown', () => {
  it('creates the socket owner-only (0600) and removes it on shutdown', async () => {
    await startServer();
    const st = fs.statSync(socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    await server.shutdown();
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  it('refuses to listen on a path that is in use and leaves that socket alone', async () => {
    const other = net.createServer();
    other.listen(socketPath);
    await once(other, 'listening');
    fs.chmodSync(socketPath, 0o666);
    server = new TtrpcServer({ logger });
    await expect(server.listen(socketPath)).rejects.toThrow(`ttrpc: listen on ${socketPath}: listen EADDRINUSE`);
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o666);
    other.close();
  });

  it('closes connections from another uid without answering, like UnixSocketRequireSameUser', async () => {
    expect(process.getuid?.()).toBe(0); // the test switches to nobody
    await startServer();
    server.register('test.Echo', new Map([['Echo', echo]]));
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(socketPath, 0o666); // let nobody reach the socket, so only the peer check stands in the way
    const frame = Buffer.from(
      encodeFrame({ streamId: 1, type: MessageType.request, flags: 0, payload: toBinary(RequestSchema, create(RequestSchema, { service: 'test.Echo', method: 'Echo' })) }),
    ).toString('hex');
    const script = `
      const s = require('node:net').createConnection(${JSON.stringify(socketPath)});
      let got = 0;
      s.on('connect', () => s.write(Buffer.from('${frame}', 'hex')));
      s.on('data', (d) => { got += d.length; });
      s.on('error', () => {});
      s.on('close', () => { console.log(JSON.stringify({ got })); process.exit(0); });
      setTimeout(() => { console.log(JSON.stringify({ got, open: true })); process.exit(0); }, 3000);`;
    const { stdout } = await promisify(execFile)('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script]);
    expect(JSON.parse(stdout.trim().split('\n')[0]!)).toEqual({ got: 0 });
    expect(logs.filter((l) => l.includes('refusing connection'))).toHaveLength(1);
    // and the same request from our own uid is answered
    expect([...(await (await connect()).call('test.Echo', 'Echo', Uint8Array.of(1)))]).toEqual([1]);
  });

  it('graceful shutdown finishes in-flight requests, refuses new ones and closes the connection', async () => {
    await startServer();
    const release = gate();
    let started!: () => void;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    server.register('test.Block', new Map<string, MethodHandler>([['Block', async () => {
      started();
      await release.wait;
      return Uint8Array.of(42);
    }], ['Echo', echo]]));
    const client = await connect();
    const inFlight = client.call('test.Block', 'Block', new Uint8Array());
    await running;
    const done = server.shutdown();
    await expect(client.call('test.Block', 'Echo', Uint8Array.of(1))).rejects.toMatchObject({ code: Code.Unavailable, message: 'ttrpc: server shutting down' });
    await expect(TtrpcClient.connect(socketPath, { timeoutMs: 2000 })).rejects.toThrow(/cannot connect/);
    release.open();
    expect([...(await inFlight)]).toEqual([42]);
    await done;
    await client.closed;
    expect(server.connectionCount).toBe(0);
  });

  it('fails pending calls with Unavailable when the server goes away', async () => {
    await startServer();
    server.register('test.Hang', new Map<string, MethodHandler>([['Hang', () => new Promise(() => {})]]));
    const client = await connect();
    const pending = expect(client.call('test.Hang', 'Hang', new Uint8Array())).rejects.toMatchObject({ code: Code.Unavailable });
    await new Promise((r) => setTimeout(r, 20));
    await server.close();
    await pending;
    await expect(client.call('test.Hang', 'Hang', new Uint8Array())).rejects.toMatchObject({ code: Code.Unavailable });
  });
});
