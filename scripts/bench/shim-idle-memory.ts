/**
 * node scripts/bench/shim-idle-memory.ts --target FILE --runtime NAME
 *
 * One measurement of the shim suite: starts a detached `sleep` task under the runtime in the
 * private containerd named by FILE (written by suites/shim.ts), lets its shim go idle, reads
 * the shim process's Rss and Pss from /proc/<pid>/smaps_rollup, removes the task again and
 * prints {"rssKiB":…,"pssKiB":…} as its last line.
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

const { values } = parseArgs({ options: { target: { type: 'string' }, runtime: { type: 'string' } }, strict: true });
if (!values.target || !values.runtime) {
  console.error('usage: shim-idle-memory.ts --target FILE --runtime NAME');
  process.exit(2);
}
const target = JSON.parse(fs.readFileSync(values.target, 'utf8')) as Target;
const id = `bench-idle-${process.pid}`;
const ctr = (args: string[]) =>
  execFileSync(target.ctr, ['--address', target.address, '--namespace', target.namespace, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function shimPid(): number {
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

ctr(['run', '-d', '--fifo-dir', target.fifoDir, '--runtime', values.runtime, target.image, id, 'sleep', '100000']);
try {
  const pid = shimPid();
  await sleep(1000); // idle: start-up garbage collected, nothing in flight
  const result = { rssKiB: smapsKiB(pid, 'Rss'), pssKiB: smapsKiB(pid, 'Pss') };
  console.log(JSON.stringify(result));
} finally {
  ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
  for (let i = 0; i < 100; i++) {
    if (!/RUNNING/.test(ctr(['tasks', 'ls']).split('\n').find((l) => l.startsWith(id)) ?? '')) break;
    await sleep(50);
  }
  ctr(['tasks', 'delete', id]);
  ctr(['containers', 'rm', id]);
}
