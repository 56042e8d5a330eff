/**
 * Fuzzing the real shim daemon's ttrpc endpoint (containerd-shim-outrigger-v2 started the way
 * containerd starts it, Task API v2 and v3 on its socket). Two properties: sequences of
 * frame-ish writes (valid and invalid headers, every message type and flag, odd/even/reused
 * stream ids, oversized lengths, random bytes, random split points, abrupt closes), and
 * well-framed requests whose protobuf payloads are random or mutated encodings of the method's
 * own request. Invariants after every case: the daemon is alive, every byte it sent back on the
 * fuzzed connection is a well-formed Response or Data frame, and a separate connection still
 * gets answers (Connect, and NotFound for an unknown task). Each case is bounded in time.
 *
 * Create, Checkpoint and Shutdown are never sent: Create runs runc on a bundle path and mounts
 * whatever the payload names, and Shutdown of an empty shim ends it by design.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { create, fromBinary, ScalarType, toBinary } from '@bufbuild/protobuf';
import type { DescMessage } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BootstrapParamsSchema } from '../src/api/gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts';
import { Task } from '../src/api/gen/containerd/task/v2/shim_pb.ts';
import { RequestSchema, ResponseSchema } from '../src/api/gen/ttrpc/request_pb.ts';
import { TASK_SERVICE_V2, TASK_SERVICE_V3 } from '../src/api/task-service.ts';
import { TtrpcClient, socketPathOf } from '../src/ttrpc/client.ts';
import { encodeFrame, HEADER_SIZE, MessageType } from '../src/ttrpc/frame.ts';
import { FrameDecoder } from '../src/ttrpc/frame-decoder.ts';
import { Code } from '../src/ttrpc/status.ts';
import { serviceClient } from '../src/ttrpc/typed.ts';
import { pidAlive } from '../scripts/dev-containerd/private-containerd.ts';
import { assertFuzz, fuzzTestTimeout } from './support/fuzz.ts';
import { joinGroup } from '../shims/outrigger-v2/bootstrap/group-join.ts';

const repo = path.resolve(import.meta.dirname, '..');
const main = path.join(repo, 'src/cli/main.ts');
const namespace = `fuzz-${process.pid}`;
const id = `fuzz-ttrpc-${process.pid}-${Date.now().toString(36)}`;
/** Per-case bound: a case that has not finished by then is a hang. */
const CASE_MS = 8_000;

const SAFE_METHODS = Task.methods.filter((m) => !['Create', 'Checkpoint', 'Shutdown'].includes(m.name));

let bundle: string;
let address: string;
let daemonPid: number;
let logReader: ChildProcess | undefined;
let shimLog = '';
let steady: TtrpcClient;

beforeAll(async () => {
  bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'fuzz-ttrpc-'));
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', annotations: {} }));
  spawnSync('mkfifo', ['-m', '0700', path.join(bundle, 'log')]);
  logReader = spawn('cat', [path.join(bundle, 'log')], { stdio: ['ignore', 'pipe', 'ignore'] });
  logReader.stdout!.setEncoding('utf8').on('data', (d: string) => (shimLog += d));
  const params = toBinary(BootstrapParamsSchema, create(BootstrapParamsSchema, { instanceId: id, namespace }));
  const { NODE_OPTIONS: _, ...env } = process.env;
  const r = spawnSync(process.execPath, [main, 'shim', '-namespace', namespace, '-address', path.join(bundle, 'containerd.sock'), '-id', id, 'start'], {
    cwd: bundle,
    input: params,
    env,
    timeout: 30_000,
  });
  if (r.status !== 0) throw new Error(`shim start failed (${r.status}): ${r.stderr.toString()}`);
  address = r.stdout.toString();
  daemonPid = Number(fs.readFileSync(path.join(bundle, 'shim.pid'), 'utf8'));
  steady = await TtrpcClient.connect(address);
});

afterAll(async () => {
  try {
    await steady?.close();
    const c = await TtrpcClient.connect(address);
    await serviceClient(c, Task, TASK_SERVICE_V2).shutdown({ id }).catch(() => undefined);
    await c.close();
  } finally {
    for (let i = 0; i < 100 && daemonPid && pidAlive(daemonPid); i++) await sleep(50);
    if (daemonPid && pidAlive(daemonPid)) process.kill(daemonPid, 'SIGKILL');
    logReader?.kill();
    fs.rmSync(bundle, { recursive: true, force: true });
    if (address) fs.rmSync(socketPathOf(address), { force: true });
  }
});

/** What a case leaves true: daemon alive, another connection served promptly and correctly. */
async function serverStillAnswers(): Promise<void> {
  expect(pidAlive(daemonPid), `shim daemon ${daemonPid} died; log:\n${shimLog.slice(-3000)}`).toBe(true);
  // A daemon leaves 30 s after a `start` whose Create never came (shim-lifetime.ts), and this
  // suite never creates: it re-joins as another `start` of the task would, which renews the hold.
  expect(await joinGroup(socketPathOf(address), id)).toBe('joined');
  const task = serviceClient(steady, Task, TASK_SERVICE_V2);
  const c = await task.connect({ id }, { timeoutMs: 5_000 });
  expect(c.shimPid).toBe(daemonPid);
  const fresh = await TtrpcClient.connect(address, { timeoutMs: 5_000 });
  try {
    await expect(serviceClient(fresh, Task, TASK_SERVICE_V3).state({ id: 'nope' }, { timeoutMs: 5_000 })).rejects.toMatchObject({ code: Code.NotFound });
  } finally {
    await fresh.close();
  }
}

/**
 * Writes `pieces` to a fresh connection, then closes it the way `ending` says, collecting what
 * the server sends back. Resolves when the server closed or `lingerMs` passed.
 */
async function throwAt(pieces: readonly Uint8Array[], ending: 'half-close' | 'destroy' | 'linger', lingerMs: number): Promise<Buffer> {
  const socket = net.createConnection(socketPathOf(address));
  const got: Buffer[] = [];
  socket.on('data', (d: Buffer) => got.push(d));
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  for (const p of pieces) {
    if (socket.destroyed) break;
    socket.write(p);
  }
  if (ending === 'destroy') {
    socket.destroy();
  } else {
    if (ending === 'half-close') socket.end();
    await Promise.race([closed, sleep(lingerMs)]);
    socket.destroy();
  }
  return Buffer.concat(got);
}

/** Everything the server wrote must be whole-or-cut-short Response/Data frames that decode. */
function expectWellFormedAnswers(bytes: Buffer): void {
  const decoder = new FrameDecoder();
  const items = decoder.push(bytes);
  for (const item of items) {
    expect(item.kind).toBe('frame');
    if (item.kind !== 'frame') continue;
    expect([MessageType.response, MessageType.data]).toContain(item.frame.type);
    if (item.frame.type === MessageType.response) {
      const response = fromBinary(ResponseSchema, item.frame.payload);
      if (response.status) expect(response.status.code).toBeGreaterThan(0);
    }
  }
}

function requestFrame(streamId: number, service: string, method: string, payload: Uint8Array, type: number = MessageType.request, flags = 0): Uint8Array {
  const body = toBinary(RequestSchema, create(RequestSchema, { service, method, payload }));
  return encodeFrame({ streamId, type, flags, payload: body });
}

function header(length: number, streamId: number, type: number, flags: number): Uint8Array {
  const h = new Uint8Array(HEADER_SIZE);
  const v = new DataView(h.buffer);
  v.setUint32(0, length);
  v.setUint32(4, streamId);
  v.setUint8(8, type);
  v.setUint8(9, flags);
  return h;
}

const serviceName = fc.constantFrom(TASK_SERVICE_V2, TASK_SERVICE_V3, 'containerd.task.v2.Task ', 'nope.Service', '');
const methodName = fc.oneof(fc.constantFrom(...SAFE_METHODS.map((m) => m.name)), fc.string({ maxLength: 12 }));
const streamId = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constant(0xffff_ffff), fc.nat());

/** One write of the frame soup. */
const frameish = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(streamId, serviceName, methodName, fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })).map(([s, svc, m, p, type, flags]) => requestFrame(s, svc, m, p, type % 4 === 0 ? type : (type % 3) + 1, flags)) },
  // a header whose declared length is larger than what follows (cut short), or over the 4 MiB cap
  { weight: 2, arbitrary: fc.tuple(fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: (4 << 20) - 2, max: (4 << 20) + 2 }), fc.integer({ min: 0, max: (1 << 24) - 1 })), streamId, fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 64 })).map(([len, s, type, flags, tail]) => Uint8Array.from(Buffer.concat([header(len, s, type, flags), tail]))) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 300 }) },
  // the reserved high length byte set: not ttrpc, the connection must be dropped
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1 << 24, max: 0xffff_ffff }), streamId).map(([len, s]) => header(len, s, 1, 0)) },
);

/** Re-cuts the concatenated writes at random points, so headers straddle packets. */
function resplit(parts: readonly Uint8Array[], cuts: readonly number[]): Uint8Array[] {
  const all = Buffer.concat(parts);
  const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of [...points, all.length]) {
    if (p > at) out.push(all.subarray(at, p));
    at = p;
  }
  return out;
}

/** A valid encoding of `desc` with random field values, then maybe mutated byte-wise. */
function mutatedPayload(desc: DescMessage, seedBytes: Uint8Array, flips: readonly number[], cut: number | undefined): Uint8Array {
  const text = Buffer.from(seedBytes).toString('latin1');
  const init: Record<string, unknown> = {};
  for (const field of desc.fields) {
    if (field.fieldKind === 'scalar') {
      init[field.localName] = field.scalar === ScalarType.STRING ? text : undefined;
    }
  }
  const bytes = Buffer.from(toBinary(desc, create(desc, Object.fromEntries(Object.entries(init).filter(([, v]) => v !== undefined)))));
  for (const f of flips) if (bytes.length > 0) bytes[f % bytes.length]! ^= 1 << (f % 8);
  return cut === undefined ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
}

describe('ttrpc fuzzing against the live shim daemon', () => {
  it('frame soup on one connection never takes the daemon down or stops it answering others', async () => {
    await assertFuzz(
      'ttrpc',
      'frame soup (headers, types, flags, stream ids, oversize, splits, closes)',
      [fc.array(frameish, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), fc.constantFrom('half-close' as const, 'destroy' as const, 'linger' as const)],
      async (parts, cuts, ending) => {
        const answers = await throwAt(resplit(parts, cuts), ending, 300);
        if (ending !== 'destroy') expectWellFormedAnswers(answers);
        await serverStillAnswers();
      },
      { runs: 60, timeoutMs: CASE_MS },
    );
  }, fuzzTestTimeout(60, CASE_MS));

  it('random and mutated protobuf payloads for every Task method get a well-formed answer', async () => {
    await assertFuzz(
      'ttrpc',
      'Task method payloads (random bytes, mutated encodings)',
      [
        fc.constantFrom(...SAFE_METHODS),
        fc.constantFrom(TASK_SERVICE_V2, TASK_SERVICE_V3),
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }).map((b) => ({ raw: b })),
          fc.tuple(fc.uint8Array({ maxLength: 80 }), fc.array(fc.nat(), { maxLength: 4 }), fc.option(fc.nat(), { nil: undefined })).map(([s, f, c]) => ({ s, f, c })),
        ),
      ],
      async (method, service, input) => {
        const payload = 'raw' in input ? input.raw : mutatedPayload(method.input, input.s, input.f, input.c);
        const socket = net.createConnection(socketPathOf(address));
        socket.on('error', () => {});
        const got: Buffer[] = [];
        socket.on('data', (d: Buffer) => got.push(d));
        await new Promise<void>((resolve) => socket.once('connect', resolve));
        socket.write(requestFrame(1, service, method.name, payload));
        // The answer: one Response frame on stream 1, an error status or the method's output.
        const answer = await new Promise<Buffer>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no answer to ${method.name} within ${CASE_MS / 2} ms`)), CASE_MS / 2);
          const check = () => {
            const all = Buffer.concat(got);
            if (all.length >= HEADER_SIZE && all.length >= HEADER_SIZE + all.readUInt32BE(0)) {
              clearTimeout(timer);
              resolve(all);
            }
          };
          socket.on('data', check);
          socket.once('close', () => {
            clearTimeout(timer);
            reject(new Error(`server closed the connection instead of answering ${method.name}`));
          });
        });
        socket.destroy();
        const items = new FrameDecoder().push(answer);
        const first = items[0];
        expect(first?.kind).toBe('frame');
        if (first?.kind !== 'frame') return;
        expect(first.frame.streamId).toBe(1);
        expect(first.frame.type).toBe(MessageType.response);
        const response = fromBinary(ResponseSchema, first.frame.payload);
        if (response.status && response.status.code !== 0) {
          expect(response.status.message.length).toBeGreaterThan(0);
        } else {
          expect(() => fromBinary(method.output, response.payload)).not.toThrow();
        }
        await serverStillAnswers();
      },
      { runs: 80, timeoutMs: CASE_MS },
    );
    // Nothing the fuzzing did was a crash the daemon logged and survived by luck.
    expect(shimLog).not.toMatch(/uncaught exception|unhandled rejection|request failed internally/);
  }, fuzzTestTimeout(80, CASE_MS));
});
