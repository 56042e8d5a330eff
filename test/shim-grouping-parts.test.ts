/**
 * The pieces behind shim grouping, without containerd: the ShimGrouping option (TOML key
 * spellings, bad values), how `start` finds it in the options Any containerd sends (config_path
 * and config_body, prefixed type URLs, other option types), the Group/Join call against a real
 * ttrpc server (joined, leaving, absent for a missing or stale socket, an older shim without the
 * service), the lifetime rules (a join holds the shim until its Create or Shutdown or until it
 * lapses; leaving refuses joins), and the lock that serialises stale-socket removal.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { create, toBinary } from '@bufbuild/protobuf';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OptionsSchema as RuncOptionsSchema } from '../src/api/gen/containerd/runc/v1/oci_pb.ts';
import { StatusSchema } from '../src/api/gen/google/rpc/status_pb.ts';
import { ResponseSchema } from '../src/api/gen/ttrpc/request_pb.ts';
import { OptionsSchema as RuntimeOptionsSchema } from '../src/api/gen/runtimeoptions/v1/api_pb.ts';
import { TtrpcServer } from '../src/ttrpc/server.ts';
import { decodeJoinRequest, encodeJoinRequest, GROUP_SERVICE, joinGroup, responseCode } from '../shims/outrigger-v2/bootstrap/group-join.ts';
import { NODE_GROUP, socketPath } from '../shims/outrigger-v2/bootstrap/socket-address.ts';
import { lockSocket } from '../shims/outrigger-v2/bootstrap/stale-socket-lock.ts';
import { shimGroupingOf } from '../shims/outrigger-v2/bootstrap/start-grouping.ts';
import { shimGroupingFromToml } from '../shims/outrigger-v2/runtime/shim-grouping.ts';
import { ShimLifetime } from '../shims/outrigger-v2/shim-lifetime.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grouping-parts-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('ShimGrouping in the runtime options TOML', () => {
  it('defaults to pod and reads node in every key spelling', () => {
    expect(shimGroupingFromToml('BinaryName = "crun"\n', 'x.toml')).toBe('pod');
    expect(shimGroupingFromToml('', 'x.toml')).toBe('pod');
    expect(shimGroupingFromToml('ShimGrouping = "node"', 'x.toml')).toBe('node');
    expect(shimGroupingFromToml('shim_grouping = "node" # per namespace', 'x.toml')).toBe('node');
    expect(shimGroupingFromToml("[options]\nSHIMGROUPING = 'pod'\nBinaryName = \"runc\"", 'x.toml')).toBe('pod');
  });

  it('rejects unknown values and non-strings, naming the file and the key', () => {
    expect(() => shimGroupingFromToml('ShimGrouping = "cluster"', '/etc/o.toml')).toThrow(
      'runtime options /etc/o.toml: ShimGrouping must be one of "pod", "node", not "cluster"',
    );
    expect(() => shimGroupingFromToml('ShimGrouping = true', 'o.toml')).toThrow(/ShimGrouping must be one of .* not true/);
    expect(() => shimGroupingFromToml('ShimGrouping = [1]', 'o.toml')).toThrow(/o\.toml:1/);
  });
});

describe('the grouping `start` reads from the options Any', () => {
  const runtimeOptionsAny = (init: { configPath?: string; configBody?: Uint8Array }, typeUrl = 'runtimeoptions.v1.Options') => ({
    typeUrl,
    value: toBinary(RuntimeOptionsSchema, create(RuntimeOptionsSchema, { typeUrl: 'ignored', ...init })),
  });

  it('follows config_path and config_body, with or without a type URL prefix', () => {
    const file = path.join(dir, 'node.toml');
    fs.writeFileSync(file, 'BinaryName = "runc"\nShimGrouping = "node"\n');
    expect(shimGroupingOf(runtimeOptionsAny({ configPath: file }))).toBe('node');
    expect(shimGroupingOf(runtimeOptionsAny({ configPath: file }, 'type.googleapis.com/runtimeoptions.v1.Options'))).toBe('node');
    expect(shimGroupingOf(runtimeOptionsAny({ configBody: new TextEncoder().encode('ShimGrouping = "node"') }))).toBe('node');
    expect(shimGroupingOf(runtimeOptionsAny({ configBody: new TextEncoder().encode('SystemdCgroup = false') }))).toBe('pod');
  });

  it('is pod for no options and for runc Options, which have no such field', () => {
    expect(shimGroupingOf(undefined)).toBe('pod');
    const runc = { typeUrl: 'containerd.runc.v1.Options', value: toBinary(RuncOptionsSchema, create(RuncOptionsSchema, { binaryName: 'crun' })) };
    expect(shimGroupingOf(runc)).toBe('pod');
  });

  it('fails with the path when config_path cannot be read, and on bytes that do not parse', () => {
    const missing = path.join(dir, 'missing.toml');
    expect(() => shimGroupingOf(runtimeOptionsAny({ configPath: missing }))).toThrow(`cannot read runtime options config_path ${missing}`);
    expect(() => shimGroupingOf({ typeUrl: 'runtimeoptions.v1.Options', value: Uint8Array.of(0x12, 0x05, 0x61) })).toThrow(/runtimeoptions\.v1\.Options \(3 bytes\) does not parse/);
  });

  it('gives the node group a socket no task or sandbox id can share', () => {
    const node = socketPath('/run/containerd/containerd.sock', 'k8s.io', NODE_GROUP);
    expect(node).toMatch(/^\/run\/containerd\/s\/[0-9a-f]{64}$/);
    expect(node).not.toBe(socketPath('/run/containerd/containerd.sock', 'k8s.io', 'node'));
    expect(node).not.toBe(socketPath('/run/containerd/containerd.sock', 'default', NODE_GROUP));
  });
});

describe('Group/Join', () => {
  it('encodes the request and reads status codes from a ttrpc Response', () => {
    expect(decodeJoinRequest(encodeJoinRequest('task-1'))).toBe('task-1');
    expect(responseCode(new Uint8Array())).toBe(0);
    expect(responseCode(toBinary(ResponseSchema, create(ResponseSchema, { payload: Uint8Array.of(1, 2) })))).toBe(0);
    const refused = create(ResponseSchema, { status: create(StatusSchema, { code: 14, message: 'leaving' }) });
    expect(responseCode(toBinary(ResponseSchema, refused))).toBe(14);
  });

  async function serve(withGroup: ShimLifetime | undefined): Promise<{ socket: string; close: () => Promise<void> }> {
    const socket = path.join(dir, 'shim.sock');
    const server = new TtrpcServer({ logger: { warn: () => undefined, error: () => undefined } });
    if (withGroup) server.register(GROUP_SERVICE, withGroup.handlers());
    const listener = net.createServer();
    await new Promise<void>((resolve) => listener.listen(socket, resolve));
    server.serve(listener);
    return { socket, close: () => server.close() };
  }

  it('a live shim takes the task and holds it as joined; a leaving one refuses', async () => {
    let stopped = 0;
    const lifetime = new ShimLifetime({ tasks: () => 0, stop: () => stopped++ });
    const { socket, close } = await serve(lifetime);
    try {
      expect(await joinGroup(socket, 'a')).toBe('joined');
      expect(await joinGroup(socket, 'b')).toBe('joined');
      expect(lifetime.pendingJoins).toEqual(['a', 'b']);
      lifetime.markLeaving();
      expect(await joinGroup(socket, 'c')).toBe('leaving');
      expect(lifetime.pendingJoins).toEqual(['a', 'b']);
      expect(stopped).toBe(0);
    } finally {
      await close();
    }
  });

  it('an older shim without the Group service counts as joined (it answers Unimplemented)', async () => {
    const { socket, close } = await serve(undefined);
    try {
      expect(await joinGroup(socket, 'a')).toBe('joined');
    } finally {
      await close();
    }
  });

  it('is absent for a missing path and for the stale socket of a killed process', async () => {
    expect(await joinGroup(path.join(dir, 'nothing'), 'a')).toBe('absent');
    const stale = path.join(dir, 'stale.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(fs.existsSync(stale)).toBe(true);
    expect(await joinGroup(stale, 'a')).toBe('absent');
  });
});

describe('ShimLifetime', () => {
  it('leaves only when no task, Create in flight or join holds it', () => {
    let tasks = 0;
    const stops: string[] = [];
    const lifetime = new ShimLifetime({ tasks: () => tasks, stop: (why) => stops.push(why) });
    lifetime.join('first'); // the task whose start spawned the daemon
    lifetime.join('second');
    lifetime.created('first');
    tasks = 1;
    lifetime.shutdownRequested('other');
    expect(stops).toEqual([]);
    tasks = 0;
    lifetime.shutdownRequested('first');
    expect(stops).toEqual([]); // 'second' joined and has not been created yet
    lifetime.created('second');
    tasks = 1;
    lifetime.shutdownRequested('first');
    expect(stops).toEqual([]);
    tasks = 0;
    lifetime.shutdownRequested('second');
    expect(stops).toEqual(['Shutdown RPC with no task left']);
    expect(lifetime.leaving).toBe(true);
    expect(lifetime.join('third')).toBe(false);
    lifetime.shutdownRequested('third');
    expect(stops).toHaveLength(1);
  });

  it('a Shutdown for a joined task whose Create failed releases its join', () => {
    const stops: string[] = [];
    const lifetime = new ShimLifetime({ tasks: () => 0, stop: (why) => stops.push(why) });
    lifetime.join('failed-create');
    lifetime.shutdownRequested('failed-create');
    expect(stops).toHaveLength(1);
  });

  it('a join whose Create never comes lapses, and the idle shim then leaves by itself', async () => {
    const stops: string[] = [];
    const lifetime = new ShimLifetime({ tasks: () => 0, stop: (why) => stops.push(why), joinTtlMs: 50 });
    lifetime.join('never-created');
    lifetime.check('Shutdown of another task');
    expect(stops).toEqual([]);
    for (let i = 0; i < 200 && stops.length === 0; i++) await sleep(10);
    expect(stops).toEqual(['joined tasks never arrived and no task is left']);
  });
});

describe('stale socket lock', () => {
  it('is exclusive: a second locker waits for the first to release', async () => {
    const socket = path.join(dir, 's');
    const first = await lockSocket(socket);
    let secondHas = false;
    const second = lockSocket(socket).then((l) => {
      secondHas = true;
      return l;
    });
    await sleep(50);
    expect(secondHas).toBe(false);
    first.release();
    (await second).release();
    expect(secondHas).toBe(true);
    expect(fs.existsSync(`${socket}.lock`)).toBe(false);
  });

  it('breaks a lock whose owner is gone', async () => {
    const socket = path.join(dir, 's');
    const child = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => child.once('exit', resolve));
    fs.writeFileSync(`${socket}.lock`, String(child.pid));
    const old = new Date(Date.now() - 1_000);
    fs.utimesSync(`${socket}.lock`, old, old);
    const lock = await lockSocket(socket, { timeoutMs: 2_000 });
    expect(fs.readFileSync(`${socket}.lock`, 'utf8')).toBe(String(process.pid));
    lock.release();
  });
});
