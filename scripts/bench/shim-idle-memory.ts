/**
 * node scripts/bench/shim-idle-memory.ts --target FILE --runtime NAME [--copies N]
 *
 * One measurement of the shim suite, in the private containerd named by FILE (written by
 * suites/shim.ts):
 * 1. starts one detached `sleep` task under the runtime, lets its shim go idle and reads the
 *    shim's Rss and Pss from /proc/<pid>/smaps_rollup: the cost of a lone shim, in which Pss
 *    counts every page of the executable it touched as its own (node-sea.md §2.5);
 * 2. starts N-1 more tasks (one shim each), lets them go idle and reads every shim's Pss: their
 *    mean is the per-shim cost on a node running N of them, where the executable's file pages
 *    are shared N ways;
 * then removes the tasks and prints {"rssKiB":…,"pssKiB":…,"pssPerShimKiB":…} as its last line.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

interface Target {
  ctr: string;
  address: string;
  namespace: string;
  fifoDir: string;
  image: string;
}

const { values } = parseArgs({
  options: { target: { type: 'string' }, runtime: { type: 'string' }, copies: { type: 'string', default: '10' } },
  strict: true,
});
const copies = Number(values.copies);
if (!values.target || !values.runtime || !Number.isInteger(copies) || copies < 1) {
  console.error('usage: shim-idle-memory.ts --target FILE --runtime NAME [--copies N ≥ 1]');
  process.exit(2);
}
const runtime = values.runtime;
const target = JSON.parse(fs.readFileSync(values.target, 'utf8')) as Target;
const ids = Array.from({ length: copies }, (_, i) => `bench-idle-${process.pid}-${i}`);
const ctr = (args: string[]) =>
  execFileSync(target.ctr, ['--address', target.address, '--namespace', target.namespace, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** The long-running shim serving task `id` (not a `start` or `delete` run). */
function shimPid(id: string): number {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (/containerd-shim-/.test(argv[0] ?? '') && argv.includes(id) && !argv.includes('start') && !argv.includes('delete')) return Number(entry);
    } catch {
      // gone
    }
  }
  throw new Error(`no shim process for ${id}`);
}

function smapsKiB(pid: number, key: 'Rss' | 'Pss'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  if (!m) throw new Error(`no ${key} in /proc/${pid}/smaps_rollup`);
  return Number(m[1]);
}

function run(id: string): void {
  ctr(['run', '-d', '--fifo-dir', target.fifoDir, '--runtime', runtime, target.image, id, 'sleep', '100000']);
}

async function remove(id: string): Promise<void> {
  try {
    ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
  } catch {
    // never started
  }
  for (let i = 0; i < 100; i++) {
    let listed = '';
    try {
      listed = ctr(['tasks', 'ls']).split('\n').find((l) => l.startsWith(`${id} `)) ?? '';
    } catch {
      break;
    }
    if (!/RUNNING/.test(listed)) break;
    await sleep(50);
  }
  for (const args of [['tasks', 'delete', id], ['containers', 'rm', id]]) {
    try {
      ctr(args);
    } catch {
      // not there (a run that failed half-way)
    }
  }
}

const [first, ...more] = ids as [string, ...string[]];
try {
  run(first);
  const firstPid = shimPid(first);
  await sleep(1000); // idle: start-up garbage collected, nothing in flight
  const rssKiB = smapsKiB(firstPid, 'Rss');
  const pssKiB = smapsKiB(firstPid, 'Pss');
  for (const id of more) run(id);
  const pids = ids.map(shimPid);
  await sleep(1000);
  const pssSum = pids.reduce((sum, pid) => sum + smapsKiB(pid, 'Pss'), 0);
  console.log(JSON.stringify({ rssKiB, pssKiB, pssPerShimKiB: Math.round(pssSum / pids.length) }));
} finally {
  for (const id of ids) await remove(id);
}
