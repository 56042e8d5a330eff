/**
 * The shim's ttrpc socket against other users and oversized frames, on the real shim daemon
 * (containerd-shim-outrigger-v2 started as containerd starts it):
 * - the socket is created 0600, so a client running as `nobody` cannot even connect (EACCES);
 * - with the file mode loosened (an operator's chmod), `nobody` connects but the server checks
 *   SO_PEERCRED, closes the connection without answering and logs the refusal, while root's
 *   connections go on being served;
 * - a frame over the 4 MiB cap is answered ResourceExhausted with the sizes in the message,
 *   and the same connection then serves a normal request.
 * The client for `nobody` runs under setpriv in its own process (real uid/gid 65534, no groups).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BootstrapParamsSchema } from '../src/api/gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts';
import { ConnectRequestSchema, ConnectResponseSchema, Task } from '../src/api/gen/containerd/task/v2/shim_pb.ts';
import { RequestSchema, ResponseSchema } from '../src/api/gen/ttrpc/request_pb.ts';
import { TASK_SERVICE_V2 } from '../src/api/task-service.ts';
import { socketPathOf, TtrpcClient } from '../src/ttrpc/client.ts';
import { encodeFrame, HEADER_SIZE, MAX_MESSAGE_SIZE, MessageType } from '../src/ttrpc/frame.ts';
import { FrameDecoder } from '../src/ttrpc/frame-decoder.ts';
import { Code } from '../src/ttrpc/status.ts';
import { serviceClient } from '../src/ttrpc/typed.ts';
import { pidAlive } from '../scripts/dev-containerd/private-containerd.ts';

const repo = path.resolve(import.meta.dirname, '..');
const main = path.join(repo, 'src/cli/main.ts');
const namespace = `sec-${process.pid}`;
const id = `sec-socket-${process.pid}-${Date.now().toString(36)}`;

let bundle: string;
let socket: string;
let daemonPid: number;
let logReader: ChildProcess | undefined;
let shimLog = '';
/** A dir on the socket's filesystem that `nobody` may traverse (/run/containerd is 0700). */
let linkDir: string;

beforeAll(() => {
  bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'sec-socket-'));
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
  socket = socketPathOf(r.stdout.toString());
  daemonPid = Number(fs.readFileSync(path.join(bundle, 'shim.pid'), 'utf8'));
  linkDir = fs.mkdtempSync(path.join(path.dirname(path.dirname(path.dirname(socket))), 'outrigger-sec-'));
  fs.chmodSync(linkDir, 0o755);
});

afterAll(async () => {
  try {
    const c = await TtrpcClient.connect(socket);
    await serviceClient(c, Task, TASK_SERVICE_V2).shutdown({ id }).catch(() => undefined);
    await c.close();
  } finally {
    for (let i = 0; i < 100 && daemonPid && pidAlive(daemonPid); i++) await sleep(50);
    if (daemonPid && pidAlive(daemonPid)) process.kill(daemonPid, 'SIGKILL');
    logReader?.kill();
    fs.rmSync(bundle, { recursive: true, force: true });
    if (linkDir) fs.rmSync(linkDir, { recursive: true, force: true });
    if (socket) fs.rmSync(socket, { force: true });
  }
});

function connectRequest(streamId: number): Uint8Array {
  const payload = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { id }));
  return encodeFrame({ streamId, type: MessageType.request, flags: 0, payload: toBinary(RequestSchema, create(RequestSchema, { service: TASK_SERVICE_V2, method: 'Connect', payload })) });
}

/** Runs a tiny client as nobody: connect, send `frame`, report what happened within 3 s. */
interface NobodyOutcome {
  readonly connected: boolean;
  /** errno code of the first socket error (EACCES at connect; EPIPE/ECONNRESET when the server hung up). */
  readonly error: string | null;
  readonly answeredBytes: number;
  /** The connection ended within 3 s (by an error or the server's close). */
  readonly ended: boolean;
}

function asNobody(socketPath: string, frame: Uint8Array): NobodyOutcome {
  const script = `
    const net = require('node:net');
    const s = net.createConnection(process.argv[1]);
    let bytes = 0, done = false, connected = false;
    const finish = (error, ended) => {
      if (done) return;
      done = true;
      console.log(JSON.stringify({ connected, error, answeredBytes: bytes, ended }));
      s.destroy();
      process.exit(0);
    };
    s.on('error', (e) => finish(e.code, true));
    s.on('connect', () => { connected = true; s.write(Buffer.from(process.argv[2], 'hex')); });
    s.on('data', (d) => (bytes += d.length));
    s.on('close', () => finish(null, true));
    setTimeout(() => finish(null, false), 3000);
  `;
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script, socketPath, Buffer.from(frame).toString('hex')], {
    timeout: 20_000,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`client as nobody failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as NobodyOutcome;
}

async function rootStillServed(): Promise<void> {
  const c = await TtrpcClient.connect(socket);
  try {
    expect((await serviceClient(c, Task, TASK_SERVICE_V2).connect({ id }, { timeoutMs: 5_000 })).shimPid).toBe(daemonPid);
  } finally {
    await c.close();
  }
}

describe('shim socket access', () => {
  it('is 0600 and owned by root: nobody cannot connect', async () => {
    const st = fs.statSync(socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(0);
    const link = path.join(linkDir, 'closed.sock');
    fs.linkSync(socket, link);
    try {
      expect(asNobody(link, connectRequest(1))).toEqual({ connected: false, error: 'EACCES', answeredBytes: 0, ended: true });
    } finally {
      fs.rmSync(link);
    }
    await rootStillServed();
  });

  it('with the mode loosened, the server still refuses another uid and says so in its log', async () => {
    const link = path.join(linkDir, 'open.sock');
    fs.linkSync(socket, link);
    fs.chmodSync(socket, 0o666);
    try {
      const r = asNobody(link, connectRequest(1));
      // The kernel accepts the connection; the server hangs up on it without a byte of answer.
      expect(r).toMatchObject({ connected: true, answeredBytes: 0, ended: true });
      expect([null, 'EPIPE', 'ECONNRESET']).toContain(r.error);
    } finally {
      fs.chmodSync(socket, 0o600);
      fs.rmSync(link);
    }
    await rootStillServed();
    // The daemon writes its log once pino has loaded (shims/outrigger-v2/log.ts): lines from its
    // first moments arrive a little later, in order and with the time they were logged.
    for (let i = 0; i < 100 && !/refusing connection/.test(shimLog); i++) await sleep(50);
    expect(shimLog).toMatch(/refusing connection/);
    expect(shimLog).toMatch(/uid 65534/);
    expect(pidAlive(daemonPid)).toBe(true);
  });
});

describe('ttrpc frame size cap on the live shim', () => {
  it('a frame over 4 MiB gets ResourceExhausted naming both sizes; the connection goes on', async () => {
    const s = net.createConnection(socket);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    try {
      const big = MAX_MESSAGE_SIZE + 1;
      const header = Buffer.alloc(HEADER_SIZE);
      header.writeUInt32BE(big, 0);
      header.writeUInt32BE(1, 4);
      header.writeUInt8(MessageType.request, 8);
      s.write(header);
      s.write(Buffer.alloc(big));
      s.write(connectRequest(3));
      const frames = await (async () => {
        for (let i = 0; i < 200; i++) {
          const items = new FrameDecoder().push(Buffer.concat(got));
          if (items.length >= 2) return items;
          await sleep(50);
        }
        throw new Error(`only ${Buffer.concat(got).length} bytes of answers after 10 s`);
      })();
      const [first, second] = frames;
      if (first?.kind !== 'frame' || second?.kind !== 'frame') throw new Error('expected two frames');
      expect(first.frame.streamId).toBe(1);
      const status = fromBinary(ResponseSchema, first.frame.payload).status;
      expect(status?.code).toBe(Code.ResourceExhausted);
      expect(status?.message).toBe(`message length ${big} exceed maximum message size of ${MAX_MESSAGE_SIZE}`);
      expect(second.frame.streamId).toBe(3);
      const ok = fromBinary(ResponseSchema, second.frame.payload);
      expect(ok.status?.code ?? 0).toBe(0);
      expect(fromBinary(ConnectResponseSchema, ok.payload).shimPid).toBe(daemonPid);
    } finally {
      s.destroy();
    }
  });
});
