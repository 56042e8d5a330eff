/**
 * Both directions against a Go peer without containerd in between: we start the stock
 * containerd-shim-runc-v2 ourselves, as containerd would (`start` in the bundle, TTRPC_ADDRESS in
 * the environment), drive a container through Create, Start, Wait, State, Delete and Shutdown
 * with our client, and the shim's own Go ttrpc client publishes TaskCreate, TaskStart, TaskExit
 * and TaskDelete to *our* server's Events/Forward. So our server is checked against a Go client
 * and our schema against the envelopes and events Go really sends.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { toBinary } from '@bufbuild/protobuf';
import { AnySchema } from '@bufbuild/protobuf/wkt';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskCreateSchema, TaskDeleteSchema, TaskExitSchema, TaskStartSchema } from '../../src/api/gen/containerd/events/task_pb.ts';
import { OptionsSchema as RuncOptionsSchema } from '../../src/api/gen/containerd/runc/v1/oci_pb.ts';
import { Events } from '../../src/api/gen/containerd/services/events/ttrpc/v1/events_pb.ts';
import type { Envelope } from '../../src/api/gen/containerd/services/events/ttrpc/v1/events_pb.ts';
import { Task } from '../../src/api/gen/containerd/task/v2/shim_pb.ts';
import { Status as TaskStatus } from '../../src/api/gen/containerd/types/task/task_pb.ts';
import { NAMESPACE_METADATA_KEY } from '../../src/api/task-events.ts';
import { GO_ZERO_TIME_SECONDS } from '../../src/api/timestamp.ts';
import { packAny, unpackAny } from '../../src/api/typeurl.ts';
import { TtrpcClient } from '../../src/ttrpc/client.ts';
import { metadataValue } from '../../src/ttrpc/metadata.ts';
import { TtrpcServer } from '../../src/ttrpc/server.ts';
import { serviceClient, serviceHandlers } from '../../src/ttrpc/typed.ts';

const SHIM = '/usr/bin/containerd-shim-runc-v2';
const run = promisify(execFile);
const tag = `${process.pid}-${Date.now().toString(36)}`;
const id = `ttrpc-${tag}`;
const namespace = `outrigger-ttrpc-${tag}`;
const cgroupsPath = `/outrigger-ttrpc-${tag}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttrpc-shim-'));
const bundle = path.join(dir, 'bundle');
const eventsSocket = path.join(dir, 'events.sock');
/** Stands for containerd's gRPC address: the shim only hashes it into its socket name. */
const fakeGrpcAddress = path.join(dir, 'containerd.sock');

const received: { envelope: Envelope; namespaceMetadata: string | undefined }[] = [];
let events: TtrpcServer;
let shimLog: ReturnType<typeof spawn> | undefined;
let shimLogText = '';
let shimAddress = '';
let shimPid = 0;

function writeBundle(): void {
  const rootfs = path.join(bundle, 'rootfs');
  fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin/busybox'));
  fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
  for (const applet of ['sh', 'sleep']) fs.symlinkSync('busybox', path.join(rootfs, 'bin', applet));
  for (const d of ['proc', 'dev', 'sys', 'tmp']) fs.mkdirSync(path.join(rootfs, d));
  fs.writeFileSync(path.join(rootfs, 'hello'), 'hello from the bundle\n');
}

async function writeSpec(): Promise<void> {
  await run('runc', ['spec'], { cwd: bundle });
  const specPath = path.join(bundle, 'config.json');
  const spec = JSON.parse(fs.readFileSync(specPath, 'utf8')) as {
    process: { terminal: boolean; args: string[] };
    linux: { cgroupsPath?: string };
  };
  spec.process.terminal = false;
  spec.process.args = ['sh', '-c', 'test -f /hello && exit 3'];
  spec.linux.cgroupsPath = cgroupsPath;
  fs.writeFileSync(specPath, JSON.stringify(spec));
}

beforeAll(async () => {
  writeBundle();
  await writeSpec();
  // containerd creates the shim's log FIFO before `start`; the serving shim opens it write-only.
  await run('mkfifo', ['-m', '0700', path.join(bundle, 'log')]);
  shimLog = spawn('cat', [path.join(bundle, 'log')], { stdio: ['ignore', 'pipe', 'ignore'] });
  shimLog.stdout!.on('data', (d: Buffer) => {
    shimLogText += d.toString();
  });

  events = new TtrpcServer({ logger: { warn: () => {}, error: () => {} } });
  events.register(
    Events.typeName,
    serviceHandlers(Events, {
      forward: (req, ctx) => {
        received.push({ envelope: req.envelope!, namespaceMetadata: metadataValue(ctx.metadata, NAMESPACE_METADATA_KEY) });
        return {};
      },
    }),
  );
  await events.listen(eventsSocket);
});

afterAll(async () => {
  // Whatever state a failure left: the shim's own `delete` (runc delete --force), then the shim.
  if (shimPid > 0 && fs.existsSync(`/proc/${shimPid}`)) {
    await run(SHIM, ['-namespace', namespace, '-address', fakeGrpcAddress, '-publish-binary', '/usr/bin/containerd', '-id', id, '-bundle', bundle, 'delete'], {
      cwd: bundle,
    }).catch(() => undefined);
    try {
      process.kill(shimPid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (shimAddress) fs.rmSync(shimAddress.replace(/^unix:\/\//, ''), { force: true });
  shimLog?.kill();
  await events?.close();
  fs.rmSync(path.join('/run/containerd/runc', namespace), { recursive: true, force: true });
  for (const controller of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
    const cg = path.join('/sys/fs/cgroup', controller, cgroupsPath);
    if (fs.existsSync(cg)) fs.rmdirSync(cg);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

/** `containerd-shim-runc-v2 … start` in the bundle with TTRPC_ADDRESS set; resolves to its stdout. */
function shimStart(stdin: Uint8Array): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(SHIM, ['-namespace', namespace, '-address', fakeGrpcAddress, '-publish-binary', '/usr/bin/containerd', '-id', id, 'start'], {
      cwd: bundle,
      env: { ...process.env, TTRPC_ADDRESS: eventsSocket },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`shim start exited ${code}: ${err}${out}`))));
    child.stdin.end(stdin);
  });
}

function seconds(ts: Timestamp | undefined): bigint {
  return ts?.seconds ?? 0n;
}

describe('stock runc shim started by us, driven by our client, publishing to our server', () => {
  it('runs a container through its whole life over the Task API', async () => {
    // As containerd 1.6 does: the runtime options Any, protobuf-encoded, on start's stdin (the
    // shim reads stdin to EOF before it prints its address).
    shimAddress = (await shimStart(toBinary(AnySchema, packAny(RuncOptionsSchema, {})))).trim();
    expect(shimAddress).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);

    const client = await TtrpcClient.connect(shimAddress);
    const shim = serviceClient(client, Task);
    const created = await shim.create({
      id,
      bundle,
      options: packAny(RuncOptionsSchema, {}),
    });
    expect(created.pid).toBeGreaterThan(0);
    const connected = await shim.connect({ id });
    shimPid = connected.shimPid;
    expect(connected.taskPid).toBe(created.pid);

    const createdState = await shim.state({ id });
    expect([createdState.status, createdState.pid, createdState.exitedAt?.seconds]).toEqual([TaskStatus.CREATED, created.pid, GO_ZERO_TIME_SECONDS]);

    const wait = shim.wait({ id }); // held open across Start, on the same connection, as containerd does
    const started = await shim.start({ id });
    expect(started.pid).toBe(created.pid);
    const exited = await wait;
    expect(exited.exitStatus).toBe(3);
    expect(seconds(exited.exitedAt)).toBeGreaterThan(0n);

    const stopped = await shim.state({ id });
    expect([stopped.status, stopped.exitStatus]).toEqual([TaskStatus.STOPPED, 3]);

    const deleted = await shim.delete({ id });
    expect([deleted.pid, deleted.exitStatus]).toEqual([created.pid, 3]);
    await expect(shim.state({ id })).rejects.toMatchObject({ code: 5 });

    // With no container left the shim exits; containerd treats the closing connection as success.
    await shim.shutdown({ id }).catch((err: { code?: number }) => expect(err.code).toBe(14));
    for (let i = 0; i < 100 && fs.existsSync(`/proc/${shimPid}`); i++) await sleep(50);
    expect(fs.existsSync(`/proc/${shimPid}`), `shim log:\n${shimLogText}`).toBe(false);
    await client.closed;
  });

  // The shim drains its publisher before it exits, and the previous test waited for that exit.
  it('the shim`s Go ttrpc client published TaskCreate, TaskStart, TaskExit, TaskDelete to our Events/Forward', async () => {
    const topics = received.map((r) => r.envelope.topic);
    expect(topics).toEqual(['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']);
    for (const r of received) {
      expect(r.envelope.namespace).toBe(namespace);
      expect(r.namespaceMetadata).toBe(namespace);
      expect(seconds(r.envelope.timestamp)).toBeGreaterThan(0n);
    }
    const [createEnv, startEnv, exitEnv, deleteEnv] = received.map((r) => r.envelope.event!);
    expect([createEnv!.typeUrl, startEnv!.typeUrl, exitEnv!.typeUrl, deleteEnv!.typeUrl]).toEqual([
      'containerd.events.TaskCreate',
      'containerd.events.TaskStart',
      'containerd.events.TaskExit',
      'containerd.events.TaskDelete',
    ]);
    const createEvent = unpackAny(createEnv!, TaskCreateSchema);
    expect([createEvent.containerId, createEvent.bundle]).toEqual([id, bundle]);
    const pid = createEvent.pid;
    expect(pid).toBeGreaterThan(0);
    expect(unpackAny(startEnv!, TaskStartSchema)).toMatchObject({ containerId: id, pid });
    const exit = unpackAny(exitEnv!, TaskExitSchema);
    // TaskExit.id is the process id, which for the init process is the container id
    expect([exit.containerId, exit.id, exit.pid, exit.exitStatus]).toEqual([id, id, pid, 3]);
    expect(seconds(exit.exitedAt)).toBeGreaterThan(0n);
    const del = unpackAny(deleteEnv!, TaskDeleteSchema);
    expect([del.containerId, del.pid, del.exitStatus, del.id]).toEqual([id, pid, 3, '']);
  });
});
