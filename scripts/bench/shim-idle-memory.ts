/**
 * node scripts/bench/shim-idle-memory.ts --target FILE --runtime NAME --scenario idle|pod|node [--containers N] [--quick-containers M]
 *
 * One measurement of the shim memory suites, in the private containerd named by FILE (written by
 * suites/shim.ts). It starts N detached `sleep` containers under the runtime (ten at a time),
 * waits until the shims have been idle for a while, reads every new shim process's
 * /proc/<pid>/smaps_rollup and prints one JSON line, then removes the containers:
 * - idle: each container on its own (one shim each): the per-shim cost on a node running N;
 * - pod:  all N carry one io.kubernetes.cri.sandbox-id, as the containers of one CRI pod do;
 * - node: our runtime with `ShimGrouping = "node"` in its options TOML (one shim for the
 *         namespace); other runtimes get no options, so the Go shim runs one per container.
 * Printed: shims (processes), totalPssKiB, pssPerShimKiB, rssPerShimKiB, anonPerShimKiB,
 * pssPerContainerKiB. Pss shares each page among the processes mapping it, so the executable's
 * pages are split N ways when N shims run: the total is what the node pays. When the target
 * says quick (`npm run bench -- --quick`), M containers instead of N.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';

interface Target {
  ctr: string;
  address: string;
  namespace: string;
  fifoDir: string;
  image: string;
  quick?: boolean;
}

type Scenario = 'idle' | 'pod' | 'node';
const SCENARIOS: readonly Scenario[] = ['idle', 'pod', 'node'];
const OURS = 'io.containerd.outrigger.v2';
/** Starts in flight at once: enough to be quick, few enough not to time out on two cores. */
const BATCH = 10;
/** Our shim trims its heap 2 s after the last create/delete (shims/outrigger-v2/daemon-memory.ts); every runtime gets the same wait. */
const IDLE_WAIT_MS = 5_000;

const { values } = parseArgs({
  options: {
    target: { type: 'string' },
    runtime: { type: 'string' },
    scenario: { type: 'string', default: 'idle' },
    containers: { type: 'string', default: '20' },
    'quick-containers': { type: 'string' },
  },
  strict: true,
});
const scenario = values.scenario as Scenario;
if (!values.target || !values.runtime || !SCENARIOS.includes(scenario)) {
  console.error('usage: shim-idle-memory.ts --target FILE --runtime NAME --scenario idle|pod|node [--containers N ≥ 1] [--quick-containers M ≥ 1]');
  process.exit(2);
}
const runtime = values.runtime;
const target = JSON.parse(fs.readFileSync(values.target, 'utf8')) as Target;
const count = Number(target.quick && values['quick-containers'] ? values['quick-containers'] : values.containers);
if (!Number.isInteger(count) || count < 1) {
  console.error(`shim-idle-memory.ts: container count must be an integer ≥ 1, not ${count}`);
  process.exit(2);
}
const ids = Array.from({ length: count }, (_, i) => `bench-${scenario}-${process.pid}-${i}`);
const run = promisify(execFile);
const ctr = async (args: string[]): Promise<string> =>
  (await run(target.ctr, ['--address', target.address, '--namespace', target.namespace, ...args], { encoding: 'utf8' })).stdout;

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-shim-mem-'));
const nodeOptions = path.join(work, 'node.toml');
fs.writeFileSync(nodeOptions, 'ShimGrouping = "node"\n');

function runFlags(): string[] {
  if (scenario === 'pod') return ['--annotation', `io.kubernetes.cri.sandbox-id=bench-pod-${process.pid}`];
  if (scenario === 'node' && runtime === OURS) return ['--runtime-config-path', nodeOptions];
  return [];
}

/** Long-running shim processes of this containerd (not `start`/`delete` runs). */
function shimPids(): Set<number> {
  const out = new Set<number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (/containerd-shim-/.test(argv[0] ?? '') && argv.includes(target.address) && !argv.includes('start') && !argv.includes('delete')) out.add(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

function smaps(pid: number): { rss: number; pss: number; anon: number } {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`no ${key} in /proc/${pid}/smaps_rollup`);
    return Number(m[1]);
  };
  return { rss: field('Rss'), pss: field('Pss'), anon: field('Anonymous') };
}

async function remove(id: string): Promise<void> {
  await ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]).catch(() => undefined);
  for (let i = 0; i < 100; i++) {
    const listed = await ctr(['tasks', 'ls']).catch(() => '');
    if (!listed.split('\n').some((l) => l.startsWith(`${id} `) && /RUNNING/.test(l))) break;
    await sleep(50);
  }
  await ctr(['tasks', 'delete', id]).catch(() => undefined);
  await ctr(['containers', 'rm', id]).catch(() => undefined);
}

async function inBatches(items: readonly string[], fn: (id: string) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += BATCH) await Promise.all(items.slice(i, i + BATCH).map(fn));
}

const before = shimPids();
try {
  const flags = runFlags();
  await inBatches(ids, (id) => ctr(['run', '-d', '--fifo-dir', target.fifoDir, '--runtime', runtime, ...flags, target.image, id, 'sleep', '100000']));
  await sleep(IDLE_WAIT_MS);
  const pids = [...shimPids()].filter((p) => !before.has(p));
  if (pids.length === 0) throw new Error(`no new shim process for ${count} ${scenario} containers under ${runtime}`);
  const readings = pids.map(smaps);
  const sum = (k: 'rss' | 'pss' | 'anon') => readings.reduce((s, r) => s + r[k], 0);
  console.log(
    JSON.stringify({
      shims: pids.length,
      totalPssKiB: sum('pss'),
      pssPerShimKiB: Math.round(sum('pss') / pids.length),
      rssPerShimKiB: Math.round(sum('rss') / pids.length),
      anonPerShimKiB: Math.round(sum('anon') / pids.length),
      pssPerContainerKiB: Math.round(sum('pss') / count),
    }),
  );
} finally {
  await inBatches(ids, remove);
  fs.rmSync(work, { recursive: true, force: true });
}
