/**
 * Load generator of the ttrpc benchmark: our TtrpcClient calling Task/State on a shim socket in
 * a closed loop, and the rate it sustained.
 *
 *   node scripts/bench/ttrpc-load.ts --target FILE --clients N [--seconds S] [--warmup-seconds W]
 *
 * FILE is JSON `{"address": "unix:///…", "id": "container id"}`. N connections are opened, each
 * running its own sequential loop (one call outstanding per connection, as separate containerd
 * goroutines would), all in this one process. After W seconds of warm-up (JIT on both sides,
 * not counted) the calls that complete within the next S seconds are counted. Prints one JSON
 * line: callsPerSecond, the server's and this client's CPU time per call (from /proc/PID/stat of
 * the shim pid that Connect reports, and process.cpuUsage), and the raw counts. Any failed call
 * fails the run (exit 1).
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Task } from '../../src/api/gen/containerd/task/v2/shim_pb.ts';
import { Status as TaskStatus } from '../../src/api/gen/containerd/types/task/task_pb.ts';
import { TtrpcClient } from '../../src/ttrpc/client.ts';
import { serviceClient } from '../../src/ttrpc/typed.ts';
import { processCpuMs } from './process-cpu.ts';

const USAGE = 'usage: node scripts/bench/ttrpc-load.ts --target FILE --clients N [--seconds S] [--warmup-seconds W]';

export interface LoadReport {
  callsPerSecond: number;
  serverCpuUsPerCall: number;
  clientCpuUsPerCall: number;
  calls: number;
  seconds: number;
  clients: number;
  shimPid: number;
}

function positive(name: string, text: string | undefined, fallback: number, integer: boolean): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got "${text}"\n${USAGE}`);
  return n;
}

function parse() {
  let values;
  try {
    ({ values } = parseArgs({
      options: { target: { type: 'string' }, clients: { type: 'string' }, seconds: { type: 'string' }, 'warmup-seconds': { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${USAGE}`);
  }
  if (!values.target) throw new Error(`--target is required\n${USAGE}`);
  if (values.clients === undefined) throw new Error(`--clients is required\n${USAGE}`);
  const clients = positive('clients', values.clients, 1, true);
  const seconds = positive('seconds', values.seconds, 2, false);
  const warmupSeconds = positive('warmup-seconds', values['warmup-seconds'], 0.3, false);
  let target: { address?: unknown; id?: unknown };
  try {
    target = JSON.parse(fs.readFileSync(values.target, 'utf8')) as typeof target;
  } catch (err) {
    throw new Error(`cannot read target ${values.target}: ${(err as Error).message}`);
  }
  if (typeof target.address !== 'string' || typeof target.id !== 'string') {
    throw new Error(`target ${values.target} must hold {"address": string, "id": string}`);
  }
  return { address: target.address, id: target.id, clients, seconds, warmupSeconds };
}

async function main(): Promise<void> {
  const opts = parse();
  // A hung server must not hang the benchmark runner, which waits for this process unconditionally.
  setTimeout(() => {
    console.error(`ttrpc-load: no result after ${opts.warmupSeconds + opts.seconds + 30} s; is ${opts.address} answering?`);
    process.exit(1);
  }, (opts.warmupSeconds + opts.seconds + 30) * 1000).unref();

  const connections = await Promise.all(Array.from({ length: opts.clients }, () => TtrpcClient.connect(opts.address)));
  const tasks = connections.map((c) => serviceClient(c, Task));
  const { shimPid } = await tasks[0]!.connect({ id: opts.id });
  const first = await tasks[0]!.state({ id: opts.id });
  if (first.id !== opts.id || first.status !== TaskStatus.RUNNING) {
    throw new Error(`State of ${opts.id} at ${opts.address} is id "${first.id}" status ${first.status}; want the running task`);
  }

  let phase: 'warmup' | 'measure' | 'stop' = 'warmup';
  let calls = 0;
  const loops = tasks.map(async (task) => {
    while (phase !== 'stop') {
      await task.state({ id: opts.id });
      if (phase === 'measure') calls++;
    }
  });
  const window = new Promise<{ seconds: number; serverCpuMs: number; clientCpuMs: number }>((resolve, reject) => {
    setTimeout(() => {
      try {
        phase = 'measure';
        const t0 = performance.now();
        const server0 = processCpuMs(shimPid);
        const client0 = process.cpuUsage();
        setTimeout(() => {
          try {
            phase = 'stop';
            const seconds = (performance.now() - t0) / 1000;
            const serverCpuMs = processCpuMs(shimPid) - server0;
            const client = process.cpuUsage(client0);
            resolve({ seconds, serverCpuMs, clientCpuMs: (client.user + client.system) / 1000 });
          } catch (err) {
            phase = 'stop';
            reject(err as Error);
          }
        }, opts.seconds * 1000);
      } catch (err) {
        phase = 'stop';
        reject(err as Error);
      }
    }, opts.warmupSeconds * 1000);
  });
  const [measured] = await Promise.all([window, Promise.all(loops).catch((err: unknown) => {
    phase = 'stop';
    throw err;
  })]);
  await Promise.all(connections.map((c) => c.close()));
  if (calls === 0) throw new Error(`no State call completed in ${measured.seconds.toFixed(2)} s`);
  const round = (n: number, digits: number) => Number(n.toFixed(digits));
  const report: LoadReport = {
    callsPerSecond: round(calls / measured.seconds, 1),
    serverCpuUsPerCall: round((measured.serverCpuMs * 1000) / calls, 2),
    clientCpuUsPerCall: round((measured.clientCpuMs * 1000) / calls, 2),
    calls,
    seconds: round(measured.seconds, 3),
    clients: opts.clients,
    shimPid,
  };
  console.log(JSON.stringify(report));
}

main().catch((err: unknown) => {
  console.error(`ttrpc-load: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
