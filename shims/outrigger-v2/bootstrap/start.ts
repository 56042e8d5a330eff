/**
 * `start`: containerd runs it in the bundle with the options (or BootstrapParams) on stdin and
 * takes everything it prints, stdout and stderr together, as the shim's address
 * (shim-protocol.md §2.3–2.5). So: work out the group (ShimGrouping from the options TOML:
 * "node" = the namespace, else the CRI sandbox or the task) and its socket; if a live shim
 * serves it, join it (./group-join.ts: it then waits for this task's Create before it may
 * exit); if that shim is leaving, wait for it to go; otherwise spawn the daemon detached (own
 * session, stdio on /dev/null, cwd = bundle) and wait until it listens (a stale socket of a
 * crashed shim is removed by the daemon; of racing daemons one listens, the others report
 * `exists` and we join the winner); write `address`; print the bare `unix://` address; exit.
 * Errors go to stderr with a non-zero exit, which containerd reports with the output.
 */
import fs from 'node:fs';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { CliError } from '../../../src/cli/exit-codes.ts';
import type { ShimFlags } from '../flags.ts';
import { writeAddressFile, writeShimPidFile } from './address-file.ts';
import type { StartInput } from './handshake.ts';
import { decodeReadiness, READINESS_FD } from './readiness.ts';
import type { Readiness } from './readiness.ts';
import { selfCommand } from './self-command.ts';
import { startOutput } from './start-output.ts';
import { shimGroupingOf } from './start-grouping.ts';
import { groupingKey, NODE_GROUP, readBundleAnnotations, socketAddress, socketPath } from './socket-address.ts';

const DAEMON_READY_TIMEOUT_MS = 20_000;
/** Rounds of join/spawn before giving up: each ends with a shim leaving or a race lost. */
const MAX_ROUNDS = 20;
/** How long a leaving shim gets to close its socket before we look again. */
const LEAVING_PAUSE_MS = 25;

function readAllStdin(): Uint8Array {
  try {
    return fs.readFileSync(0);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EISDIR' || code === 'ENXIO') return new Uint8Array();
    throw err;
  }
}

function spawnDaemon(flags: ShimFlags, bundle: string, socket: string, env: NodeJS.ProcessEnv): Promise<{ readiness: Readiness; pid: number | undefined }> {
  const daemonArgs = ['-namespace', flags.namespace, '-id', flags.id, '-address', flags.address, '-socket', socket];
  if (flags.debug) daemonArgs.push('-debug');
  const cmd = selfCommand(daemonArgs);
  // Loaded here, not at the top: a `start` that joins a running shim (node grouping, a pod's
  // second container) spawns nothing and saves the ≈ 2 ms node:child_process takes to load.
  const { spawn } = process.getBuiltinModule('node:child_process');
  const child = spawn(cmd.file, cmd.args, {
    cwd: bundle,
    env,
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    ...(cmd.argv0 !== undefined ? { argv0: cmd.argv0 } : {}),
  });
  const pipe = child.stdio[READINESS_FD] as NodeJS.ReadableStream | null;
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const finish = (r: Readiness) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.unref();
      (pipe as unknown as net.Socket | null)?.destroy();
      resolve({ readiness: r, pid: child.pid });
    };
    const timer = setTimeout(() => finish({ state: 'failed', error: `shim daemon did not report within ${DAEMON_READY_TIMEOUT_MS} ms` }), DAEMON_READY_TIMEOUT_MS);
    child.once('error', (err) => finish({ state: 'failed', error: `cannot spawn shim daemon: ${err.message}` }));
    pipe?.setEncoding('utf8');
    pipe?.on('data', (d: string) => {
      text += d;
      if (text.includes('\n')) finish(decodeReadiness(text));
    });
    pipe?.on('end', () => finish(decodeReadiness(text)));
    child.once('exit', (code, signal) => {
      if (!text.includes('\n')) finish({ state: 'failed', error: `shim daemon exited (${code ?? signal}) before listening` });
    });
  });
}

/** The shim gets containerd's oom_score_adj + 1, so the OOM killer picks it before containerd. */
function adjustOomScore(pid: number): void {
  try {
    const own = Number(fs.readFileSync('/proc/self/oom_score_adj', 'utf8').trim());
    fs.writeFileSync(`/proc/${pid}/oom_score_adj`, String(Math.min(own + 1, 1000)));
  } catch {
    // best effort: some hosts refuse changes (cri-on-our-machines.md)
  }
}

/** containerd's options from stdin; the protobuf code loads only when there are any. */
async function readStartInput(flags: ShimFlags): Promise<StartInput> {
  const bytes = readAllStdin();
  if (bytes.length === 0) return { options: undefined, bootstrap: undefined };
  const { parseStartInput } = await import('./handshake.ts');
  return parseStartInput(bytes, { id: flags.id, namespace: flags.namespace });
}

/**
 * The daemon's environment: containerd's, plus one malloc arena. A shim is a single-threaded
 * event loop whose few helper threads allocate little; glibc's per-thread arenas only add
 * resident memory to every idle shim (docs/shim-grouping.md, "Memory").
 */
function daemonEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX ?? '1' };
}

/**
 * Joins the group's shim or starts it. Returns the pid of a daemon we spawned (undefined when
 * we joined one).
 */
async function joinOrSpawn(flags: ShimFlags, bundle: string, socket: string, env: NodeJS.ProcessEnv): Promise<{ spawnedPid: number | undefined }> {
  const where = `shim start ${flags.namespace}/${flags.id}`;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (fs.existsSync(socket)) {
      // Only a group with a shim loads the join client (the ttrpc frame code and its wire codec).
      const { joinGroup } = await import('./group-join.ts');
      const joined = await joinGroup(socket, flags.id);
      if (joined === 'joined') return { spawnedPid: undefined };
      if (joined === 'leaving') {
        await sleep(LEAVING_PAUSE_MS);
        continue;
      }
      // absent: a stale socket; the daemon we spawn removes it.
    }
    const { readiness, pid } = await spawnDaemon(flags, bundle, socket, daemonEnv(env));
    if (readiness.state === 'failed') throw new CliError(`${where}: ${readiness.error}`);
    if (readiness.state === 'listening') return { spawnedPid: pid };
    // exists: another start's daemon won the socket; join it next round.
  }
  throw new CliError(`${where}: no shim of group socket ${socket} would take the task after ${MAX_ROUNDS} rounds`);
}

export async function runStart(flags: ShimFlags): Promise<void> {
  const bundle = process.cwd();
  const input = await readStartInput(flags);
  const env = { ...process.env };
  const ttrpcFromBootstrap = input.bootstrap?.containerdTtrpcAddress;
  if (!env.TTRPC_ADDRESS && ttrpcFromBootstrap) env.TTRPC_ADDRESS = ttrpcFromBootstrap;
  let grouping;
  try {
    grouping = shimGroupingOf(input.options);
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err));
  }
  const group = grouping === 'node' ? NODE_GROUP : groupingKey(flags.id, readBundleAnnotations(bundle));
  const socket = socketPath(flags.address, flags.namespace, group);
  const address = socketAddress(socket);

  const { spawnedPid } = await joinOrSpawn(flags, bundle, socket, env);
  if (spawnedPid !== undefined) {
    writeShimPidFile(bundle, spawnedPid);
    adjustOomScore(spawnedPid);
  }
  writeAddressFile(bundle, address);
  process.stdout.write(startOutput(address));
}
