/**
 * Random garbage on one connection never takes the server down: a stream that breaks the
 * framing (reserved length byte set) is dropped and logged once, and any byte soup at all
 * leaves the server answering a well-behaved client on another connection.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestSchema } from '../src/api/gen/ttrpc/request_pb.ts';
import { TtrpcClient } from '../src/ttrpc/client.ts';
import { encodeFrame, MessageType } from '../src/ttrpc/frame.ts';
import { TtrpcServer } from '../src/ttrpc/server.ts';
import type { MethodHandler } from '../src/ttrpc/server.ts';

let dir: string;
let socketPath: string;
let server: TtrpcServer;
let steady: TtrpcClient;
const warnings: string[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttrpc-garbage-'));
  socketPath = path.join(dir, 's.sock');
  server = new TtrpcServer({
    logger: { warn: (_f, m) => warnings.push(m), error: (_f, m) => warnings.push(m) },
  });
  server.register('test.Echo', new Map<string, MethodHandler>([['Echo', async (p) => p]]));
  await server.listen(socketPath);
  steady = await TtrpcClient.connect(socketPath);
});

afterAll(async () => {
  await steady.close();
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function sendGarbage(bytes: Uint8Array, halfClose: boolean): Promise<{ closedByServer: boolean }> {
  const socket = net.createConnection(socketPath);
  socket.on('error', () => {});
  socket.on('data', () => {}); // whatever the server answers is fine; we only watch for the close
  await once(socket, 'connect');
  const closed = once(socket, 'close');
  socket.write(bytes);
  if (halfClose) socket.end();
  const winner = await Promise.race([closed.then(() => 'closed'), new Promise((r) => setTimeout(r, 2000, 'open'))]);
  socket.destroy();
  return { closedByServer: winner === 'closed' };
}

const validFrame = (streamId: number) =>
  encodeFrame({
    streamId,
    type: MessageType.request,
    flags: 0,
    payload: toBinary(RequestSchema, create(RequestSchema, { service: 'test.Echo', method: 'Echo', payload: Uint8Array.of(1) })),
  });

async function steadyStillAnswers(n: number): Promise<void> {
  const out = await steady.call('test.Echo', 'Echo', Uint8Array.of(n & 0xff), { timeoutMs: 5000 });
  expect([...out]).toEqual([n & 0xff]);
}

describe('garbage on a connection', () => {
  it('a header with the reserved length byte set drops that connection and logs once; others are served', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 3 }),
        fc.integer({ min: 1, max: 255 }),
        fc.uint8Array({ minLength: 9, maxLength: 300 }),
        async (validBefore, highByte, rest) => {
          const before = warnings.length;
          const prefix = Array.from({ length: validBefore }, (_, i) => validFrame(2 * i + 1));
          const garbage = Uint8Array.from(Buffer.concat([...prefix, Uint8Array.of(highByte), rest]));
          const { closedByServer } = await sendGarbage(garbage, false);
          expect(closedByServer).toBe(true);
          expect(warnings.slice(before)).toEqual(['ttrpc: malformed frame, dropping connection']);
          await steadyStillAnswers(run++);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('any byte soup leaves the server answering other clients', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), async (garbage) => {
        await sendGarbage(garbage, true);
        await steadyStillAnswers(run++);
      }),
      { numRuns: 40 },
    );
    // every garbage connection is gone again; only the steady client remains
    for (let i = 0; i < 100 && server.connectionCount > 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(server.connectionCount).toBe(1);
  });
});
