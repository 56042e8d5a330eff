/**
 * ttrpc State round trips per second: our client (scripts/bench/ttrpc-load.ts) against our server
 * (scripts/bench/ttrpc-state-server.ts, a separate process under the pinned Node) and against the
 * stock containerd-shim-runc-v2 of a real running container in a private containerd 1.6. Each
 * load run connects, warms up, counts the calls completed in a fixed window and prints the rate.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type PrivateContainerd, startPrivateContainerd } from '../../dev-containerd/private-containerd.ts';
import { buildTestImages } from '../../test-images.ts';
import type { TimedBenchmark, Variant } from '../model.ts';
import { GO_SHIM, PINNED_NODE, ROOT } from '../paths.ts';

const SECONDS = 2;
const CLIENTS = [1, 16] as const;
const WORK = path.join(os.tmpdir(), `outrigger-bench-ttrpc-${process.pid}`);
const OURS_TARGET = path.join(WORK, 'ours.json');
const GO_TARGET = path.join(WORK, 'go-shim.json');
const OURS_SOCKET = path.join(WORK, 'ours.sock');
const SERVER_LOG = path.join(WORK, 'ours-server.log');
const SERVER_SCRIPT = path.join(ROOT, 'scripts/bench/ttrpc-state-server.ts');
const LOAD_SCRIPT = path.join(ROOT, 'scripts/bench/ttrpc-load.ts');
const CONTAINER_ID = `bench-ttrpc-${process.pid}`;

let server: ChildProcess | undefined;
let ctd: PrivateContainerd | undefined;

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-10).join('\n');
  } catch {
    return '(no log)';
  }
}

function canConnect(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path: socket });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function writeTarget(file: string, address: string): void {
  fs.writeFileSync(file, `${JSON.stringify({ address, id: CONTAINER_ID })}\n`);
}

async function startOurServer(): Promise<string> {
  fs.mkdirSync(WORK, { recursive: true });
  const log = fs.openSync(SERVER_LOG, 'w');
  // Output to a file, not a pipe: the runner blocks its event loop during every measured run,
  // and a server writing into an unread pipe would stall.
  try {
    server = spawn(PINNED_NODE, ['--no-warnings=ExperimentalWarning', SERVER_SCRIPT, '--socket', OURS_SOCKET, '--id', CONTAINER_ID], {
      stdio: ['ignore', log, log],
    });
  } finally {
    fs.closeSync(log);
  }
  const child = server;
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`bench ttrpc: our server exited during start; log:\n${tail(SERVER_LOG)}`);
    if (fs.existsSync(OURS_SOCKET) && (await canConnect(OURS_SOCKET))) {
      writeTarget(OURS_TARGET, `unix://${OURS_SOCKET}`);
      // No SEA command serves ttrpc yet (the shim is not built), so the pinned Node (the SEA's own) runs the server.
      return `server: \`node scripts/bench/ttrpc-state-server.ts\` under the pinned Node ${process.version}, the src/ttrpc code the SEA bundles`;
    }
    await sleep(50);
  }
  throw new Error(`bench ttrpc: our server did not listen on ${OURS_SOCKET} within 10 s; log:\n${tail(SERVER_LOG)}`);
}

async function stopOurServer(): Promise<void> {
  const child = server;
  server = undefined;
  try {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      // SIGKILL only if a graceful shutdown takes over 5 s; the timer must not outlive the server.
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(kill);
    }
  } finally {
    // The last teardown to run (variants are torn down in reverse): the work dir goes with it.
    fs.rmSync(WORK, { recursive: true, force: true });
  }
}

function goShimVersion(): string {
  try {
    return /Version:\s*(\S+)/.exec(execFileSync(GO_SHIM, ['-v'], { encoding: 'utf8' }))?.[1] ?? 'unknown version';
  } catch {
    return 'unknown version';
  }
}

async function startGoShim(): Promise<string> {
  fs.mkdirSync(WORK, { recursive: true });
  ctd = await startPrivateContainerd();
  const [image] = await buildTestImages({ outDir: path.join(WORK, 'images'), media: ['tar'], salt: `bench-ttrpc-${process.pid}` });
  if (!image) throw new Error('bench ttrpc: buildTestImages built no image');
  await ctd.importImage(image.file);
  const run = await ctd.run({ image: image.name, id: CONTAINER_ID, detach: true, args: ['sleep', '100000'] });
  if (run.exitCode !== 0) throw new Error(`bench ttrpc: ${run.command} exited ${run.exitCode}: ${run.stderr.trim()}`);
  // The runc shim's start writes its socket address into the task bundle.
  const bundle = path.join(ctd.paths.state, 'io.containerd.runtime.v2.task', ctd.namespace, CONTAINER_ID);
  writeTarget(GO_TARGET, fs.readFileSync(path.join(bundle, 'address'), 'utf8').trim());
  return `${GO_SHIM} ${goShimVersion()} serving a running busybox \`sleep\` container (io.containerd.runc.v2, runc ${runcVersion()}) in a private containerd`;
}

function runcVersion(): string {
  try {
    return /runc version (\S+)/.exec(execFileSync('runc', ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  } catch {
    return '?';
  }
}

async function stopGoShim(): Promise<void> {
  const instance = ctd;
  ctd = undefined;
  // stop() kills and deletes the task, removes the shim, its socket and everything else it made.
  await instance?.stop();
}

function load(label: string, target: string, clients: number, peer: string, extra: Partial<Variant> = {}): Variant {
  const args = ['--target', target, '--clients', String(clients), '--seconds', String(SECONDS)];
  return {
    label,
    argv: [PINNED_NODE, LOAD_SCRIPT, ...args],
    display: `node scripts/bench/ttrpc-load.ts --target $TMPDIR/${path.basename(target)} --clients ${clients} --seconds ${SECONDS}`,
    peer,
    ...extra,
  };
}

const [one, many] = CLIENTS;
const label = (who: string, n: number) => `${who}, ${n} client${n === 1 ? '' : 's'}`;

export const ttrpcState: TimedBenchmark = {
  kind: 'timed',
  name: 'ttrpc',
  title: 'ttrpc State round trips',
  what:
    `Task/State calls per second over a unix socket, made by our ttrpc client (\`src/ttrpc/client.ts\` with the typed Task ` +
    `client: encode StateRequest, frame, decode StateResponse) against two servers: ours (\`src/ttrpc/server.ts\` + ` +
    '`registerTaskService`, in its own Node process, answering from a StateResponse built once) and the stock Go ' +
    '`containerd-shim-runc-v2` of a running container in a private containerd 1.6. The Go shim\'s State for a running ' +
    'init is also in-memory work (map lookup and process state machine under mutexes, no runc call, no /proc read), so ' +
    'this compares the two ttrpc stacks and protobuf codecs, not container work. ' +
    `${one} client = one connection with one call outstanding; ${many} clients = ${many} connections in one client ` +
    'process, each with one call outstanding (a closed loop, like that many containerd goroutines). Each run warms up ' +
    `0.3 s, then counts the calls completed in ${SECONDS} s. Server CPU per call is the server process's utime + stime ` +
    'over the window (10 ms ticks) ÷ calls; client CPU per call is the load process\'s. Client and server share the ' +
    'machine\'s cores, so the client\'s own cost caps both rates alike. With one client each call is a full round trip ' +
    'during which the other process sleeps: that rate is bound by wake-up latency (a 2-vCPU VM here, shared with other ' +
    'work) more than by either stack, and moves by tens of percent between runs; the 16-client rate and the server CPU ' +
    'per call are the steadier comparisons. Goal: ours ≥ the Go shim.',
  variants: [
    load(label('ours', one), OURS_TARGET, one, label('Go shim', one), { setup: startOurServer, teardown: stopOurServer }),
    load(label('Go shim', one), GO_TARGET, one, label('Go shim', one), { setup: startGoShim, teardown: stopGoShim }),
    load(label('ours', many), OURS_TARGET, many, label('Go shim', many)),
    load(label('Go shim', many), GO_TARGET, many, label('Go shim', many)),
  ],
  metrics: [
    { key: 'callsPerSecond', label: 'State calls/s', better: 'higher' },
    { key: 'serverCpuUsPerCall', label: 'server CPU µs/call', better: 'lower' },
    { key: 'clientCpuUsPerCall', label: 'client CPU µs/call', better: 'lower' },
  ],
  ours: label('ours', many),
  peer: label('Go shim', many),
  rounds: 7,
  quickRounds: 1,
  // The check run before the rounds warms both servers; each run also warms up before counting.
  warmupRounds: 0,
};
