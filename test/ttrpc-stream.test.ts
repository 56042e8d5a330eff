/**
 * Streaming calls (ttrpc ≥ 1.2 Data frames) between our client and server, with the frames on
 * the wire checked against the protocol: a server-streaming request is flagged remote-closed, a
 * client-streaming one remote-open; the client closes its side with a Data frame flagged
 * remote-closed|no-data; an OK server stream ends with such a Data frame, anything else with a
 * Response.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RequestSchema, ResponseSchema } from '../src/api/gen/ttrpc/request_pb.ts';
import { TtrpcClient } from '../src/ttrpc/client.ts';
import { encodeFrame, Flag, MessageType } from '../src/ttrpc/frame.ts';
import type { Frame } from '../src/ttrpc/frame.ts';
import { FrameDecoder } from '../src/ttrpc/frame-decoder.ts';
import { TtrpcServer } from '../src/ttrpc/server.ts';
import type { StreamMethod } from '../src/ttrpc/server.ts';
import { Code, TtrpcError } from '../src/ttrpc/status.ts';

let dir: string;
let socketPath: string;
let server: TtrpcServer;
let client: TtrpcClient;

const bytes = (...b: number[]) => Uint8Array.from(b);
const list = (b: Uint8Array) => [...b];

async function collect(messages: AsyncIterable<Uint8Array>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const m of messages) out.push(list(m));
  return out;
}

const methods = new Map<string, StreamMethod>([
  // server-streaming: the request payload [n] asks for n messages [0] … [n-1]
  ['Count', {
    clientStreaming: false,
    serverStreaming: true,
    handler: async (stream) => {
      for await (const request of stream.messages) for (let i = 0; i < request[0]!; i++) stream.send(bytes(i));
      return undefined;
    },
  }],
  // client-streaming: sums the first byte of every message, answered in one Response
  ['Sum', {
    clientStreaming: true,
    serverStreaming: false,
    handler: async (stream) => {
      let sum = 0;
      for await (const m of stream.messages) sum += m[0] ?? 0;
      return bytes(sum);
    },
  }],
  // bidirectional: echoes every message
  ['Echo', {
    clientStreaming: true,
    serverStreaming: true,
    handler: async (stream) => {
      for await (const m of stream.messages) stream.send(m);
      return undefined;
    },
  }],
  // reads until the client closes, then holds the stream open until it is aborted
  ['Hold', {
    clientStreaming: true,
    serverStreaming: true,
    handler: async (stream, ctx) => {
      for await (const _ of stream.messages);
      await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
      return undefined;
    },
  }],
  ['FailAfterOne', {
    clientStreaming: false,
    serverStreaming: true,
    handler: async (stream) => {
      stream.send(bytes(1));
      throw new TtrpcError(Code.FailedPrecondition, 'second message unavailable');
    },
  }],
]);

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttrpc-stream-'));
  socketPath = path.join(dir, 's.sock');
  server = new TtrpcServer({ logger: { warn: () => {}, error: () => {} } });
  server.register('test.Streams', methods);
  await server.listen(socketPath);
  client = await TtrpcClient.connect(socketPath);
});

afterEach(async () => {
  await client.close();
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Sends one request frame on a raw connection and returns every frame until the stream ends. */
async function rawExchange(frames: Uint8Array[]): Promise<Frame[]> {
  const socket = net.createConnection(socketPath);
  await once(socket, 'connect');
  const decoder = new FrameDecoder();
  const got: Frame[] = [];
  const finished = new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      for (const item of decoder.push(chunk)) {
        if (item.kind !== 'frame') continue;
        got.push(item.frame);
        const last = item.frame.type === MessageType.response || (item.frame.flags & Flag.remoteClosed) !== 0;
        if (last) resolve();
      }
    });
  });
  for (const f of frames) socket.write(f);
  await finished;
  socket.destroy();
  return got;
}

const request = (streamId: number, method: string, flags: number, payload = new Uint8Array()) =>
  encodeFrame({ streamId, type: MessageType.request, flags, payload: toBinary(RequestSchema, create(RequestSchema, { service: 'test.Streams', method, payload })) });

describe('streams between our client and server', () => {
  it('server-streaming: the messages arrive in order and the stream ends without a Response', async () => {
    const s = client.openStream('test.Streams', 'Count', { clientStreaming: false, payload: bytes(4) });
    expect(s.streamId % 2).toBe(1);
    expect(await collect(s.messages)).toEqual([[0], [1], [2], [3]]);
    expect(await s.done).toBeUndefined();
    expect(client.pendingCount).toBe(0);
  });

  it('client-streaming: messages then closeSend, answered with one Response', async () => {
    const s = client.openStream('test.Streams', 'Sum', { clientStreaming: true });
    for (const n of [1, 2, 3, 4]) s.send(bytes(n));
    s.closeSend();
    expect(list((await s.done)!)).toEqual([10]);
    expect(await collect(s.messages)).toEqual([]);
    expect(() => s.send(bytes(1))).toThrow(/closed for sending/);
  });

  it('client-streaming delivers a non-empty request payload as the first message', async () => {
    const s = client.openStream('test.Streams', 'Sum', { clientStreaming: true, payload: bytes(5) });
    s.send(bytes(6));
    s.closeSend();
    expect(list((await s.done)!)).toEqual([11]);
  });

  it('bidirectional: each message echoed while the client keeps sending', async () => {
    const s = client.openStream('test.Streams', 'Echo', { clientStreaming: true });
    const it = s.messages[Symbol.asyncIterator]();
    for (const n of [7, 8, 9]) {
      s.send(bytes(n));
      expect(list((await it.next()).value as Uint8Array)).toEqual([n]);
    }
    s.closeSend();
    expect((await it.next()).done).toBe(true);
    expect(await s.done).toBeUndefined();
  });

  it('an error after some messages reaches the reader and `done` with its status', async () => {
    const s = client.openStream('test.Streams', 'FailAfterOne', { clientStreaming: false, payload: bytes(0) });
    const got: number[][] = [];
    await expect(
      (async () => {
        for await (const m of s.messages) got.push(list(m));
      })(),
    ).rejects.toMatchObject({ code: Code.FailedPrecondition, message: 'second message unavailable' });
    expect(got).toEqual([[1]]);
    await expect(s.done).rejects.toBeInstanceOf(TtrpcError);
  });

  it('many streams and unary calls share one connection', async () => {
    server.register('test.Unary', new Map([['Id', async (p: Uint8Array) => p]]));
    const streams = Array.from({ length: 20 }, (_, i) => client.openStream('test.Streams', 'Count', { clientStreaming: false, payload: bytes(i % 5) }));
    const unary = Array.from({ length: 20 }, (_, i) => client.call('test.Unary', 'Id', bytes(i)));
    const counts = await Promise.all(streams.map((s) => collect(s.messages)));
    expect(counts.map((c) => c.length)).toEqual(Array.from({ length: 20 }, (_, i) => i % 5));
    expect((await Promise.all(unary)).map(list)).toEqual(Array.from({ length: 20 }, (_, i) => [i]));
  });

  it('a stream deadline ends the handler`s read with DeadlineExceeded', async () => {
    const s = client.openStream('test.Streams', 'Sum', { clientStreaming: true, timeoutMs: 50 });
    await expect(s.done).rejects.toMatchObject({ code: Code.DeadlineExceeded });
  });
});

describe('stream frames on the wire', () => {
  it('server-streaming: Request flagged remote-closed; Data frames with flags 0, then remote-closed|no-data', async () => {
    const frames = await rawExchange([request(1, 'Count', Flag.remoteClosed, bytes(2))]);
    expect(frames.map((f) => [f.streamId, f.type, f.flags, list(f.payload)])).toEqual([
      [1, MessageType.data, 0, [0]],
      [1, MessageType.data, 0, [1]],
      [1, MessageType.data, Flag.remoteClosed | Flag.noData, []],
    ]);
  });

  it('client-streaming: Request remote-open, Data, closing Data remote-closed|no-data, then a Response', async () => {
    const frames = await rawExchange([
      request(1, 'Sum', Flag.remoteOpen),
      encodeFrame({ streamId: 1, type: MessageType.data, flags: 0, payload: bytes(20) }),
      encodeFrame({ streamId: 1, type: MessageType.data, flags: 0, payload: new Uint8Array() }), // an empty message still counts
      encodeFrame({ streamId: 1, type: MessageType.data, flags: Flag.remoteClosed | Flag.noData, payload: new Uint8Array() }),
    ]);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.type).toBe(MessageType.response);
    const r = fromBinary(ResponseSchema, frames[0]!.payload);
    expect([r.status, list(r.payload)]).toEqual([undefined, [20]]);
  });

  it('data after the client closed its side fails the stream with InvalidArgument', async () => {
    const frames = await rawExchange([
      request(1, 'Hold', Flag.remoteOpen),
      encodeFrame({ streamId: 1, type: MessageType.data, flags: Flag.remoteClosed | Flag.noData, payload: new Uint8Array() }),
      encodeFrame({ streamId: 1, type: MessageType.data, flags: 0, payload: bytes(1) }),
    ]);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.type).toBe(MessageType.response);
    expect(fromBinary(ResponseSchema, frames[0]!.payload).status).toMatchObject({ code: Code.InvalidArgument, message: 'data handling error: ttrpc: stream closed' });
  });

  it('a closing Data frame that carries data fails the stream, as Go does', async () => {
    const frames = await rawExchange([
      request(1, 'Hold', Flag.remoteOpen),
      encodeFrame({ streamId: 1, type: MessageType.data, flags: Flag.remoteClosed, payload: bytes(1) }),
    ]);
    expect(frames.map((f) => fromBinary(ResponseSchema, f.payload).status?.message)).toEqual(['data close message cannot include data']);
  });

  it('our client sends its closing frame as Data remote-closed|no-data with no payload', async () => {
    const seen: Frame[] = [];
    const plain = net.createServer((s) => {
      const d = new FrameDecoder();
      s.on('data', (c: Buffer) => {
        for (const item of d.push(c)) {
          if (item.kind !== 'frame') continue;
          seen.push(item.frame);
          if (item.frame.type === MessageType.data && item.frame.flags & Flag.remoteClosed) {
            s.write(encodeFrame({ streamId: item.frame.streamId, type: MessageType.response, flags: 0, payload: new Uint8Array() }));
          }
        }
      });
    });
    const p = path.join(dir, 'plain.sock');
    plain.listen(p);
    await once(plain, 'listening');
    const c = await TtrpcClient.connect(p);
    const s = c.openStream('a.B', 'C', { clientStreaming: true });
    s.send(bytes(3));
    s.closeSend();
    expect(list((await s.done)!)).toEqual([]);
    expect(seen.map((f) => [f.streamId, f.type, f.flags, f.payload.length])).toEqual([
      [1, MessageType.request, Flag.remoteOpen, seen[0]!.payload.length],
      [1, MessageType.data, 0, 1],
      [1, MessageType.data, Flag.remoteClosed | Flag.noData, 0],
    ]);
    await c.close();
    plain.close();
  });
});
