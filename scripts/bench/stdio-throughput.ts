/**
 * node scripts/bench/stdio-throughput.ts --target FILE --runtime NAME --uri TEMPLATE --mb N [--quick-mb M]
 *
 * One measurement of the stdio-logging suites, in the private containerd named by FILE (written
 * by suites/stdio-logging.ts). Runs `ctr run --rm --log-uri URI` of a busybox that writes N MB
 * of 100-byte lines and then a marker line, where URI is TEMPLATE with `{log}` replaced by a
 * fresh log path. It watches the log file (and its rotated siblings) every 2 ms: the rate is the
 * container's bytes over the time from the first byte in the file to the marker, so the
 * container and shim start-up (not the stdio path) stay out of it. Prints one JSON line:
 * {"mbPerSec": …, "seconds": …}. The logs are removed afterwards.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

interface Target {
  ctr: string;
  address: string;
  namespace: string;
  fifoDir: string;
  image: string;
  quick?: boolean;
}

const MARKER = 'outrigger-bench-end';
const LINE = `${'x'.repeat(90)} bench 1\n`.slice(-100);

const { values } = parseArgs({
  options: {
    target: { type: 'string' },
    runtime: { type: 'string' },
    uri: { type: 'string' },
    mb: { type: 'string', default: '200' },
    'quick-mb': { type: 'string' },
  },
  strict: true,
});
if (!values.target || !values.runtime || !values.uri?.includes('{log}')) {
  console.error('usage: stdio-throughput.ts --target FILE --runtime NAME --uri TEMPLATE-with-{log} [--mb N] [--quick-mb M]');
  process.exit(2);
}
const target = JSON.parse(fs.readFileSync(values.target, 'utf8')) as Target;
const mb = Number(target.quick && values['quick-mb'] ? values['quick-mb'] : values.mb);
if (!Number.isInteger(mb) || mb < 1) {
  console.error(`stdio-throughput.ts: --mb must be an integer ≥ 1, not ${mb}`);
  process.exit(2);
}
const bytes = mb * 1_000_000;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-stdio-'));
const log = path.join(dir, 'c.log');
const uri = values.uri.replaceAll('{log}', log);
const id = `bench-stdio-${process.pid}`;

/** Bytes in the log and its rotated siblings, and whether the marker ends the newest file. */
function observe(): { size: number; done: boolean } {
  let size = 0;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return { size: 0, done: false };
  }
  for (const n of names) {
    try {
      size += fs.statSync(path.join(dir, n)).size;
    } catch {
      // renamed under us by a rotation: counted next time
    }
  }
  let done = false;
  try {
    const fd = fs.openSync(log, 'r');
    const st = fs.fstatSync(fd);
    const tail = Buffer.alloc(Math.min(64, st.size));
    fs.readSync(fd, tail, 0, tail.length, st.size - tail.length);
    fs.closeSync(fd);
    done = tail.toString('latin1').endsWith(`${MARKER}\n`);
  } catch {
    done = false;
  }
  return { size, done };
}

const script = `yes '${LINE.slice(0, -1)}' | head -c ${bytes}; echo ${MARKER}`;
const ctr = spawn(
  target.ctr,
  ['--address', target.address, '--namespace', target.namespace, 'run', '--rm', '--fifo-dir', target.fifoDir, '--runtime', values.runtime, '--log-uri', uri, target.image, id, 'sh', '-c', script],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
let stderr = '';
ctr.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
const exited = new Promise<number | null>((resolve) => ctr.once('exit', (code) => resolve(code)));
let ctrCode: number | null | undefined;
void exited.then((c) => (ctrCode = c));

let first: bigint | undefined;
let last: bigint | undefined;
const deadline = Date.now() + 300_000;
try {
  for (;;) {
    const o = observe();
    const now = process.hrtime.bigint();
    if (first === undefined && o.size > 0) first = now;
    if (o.done) {
      last = now;
      break;
    }
    if (ctrCode !== undefined && ctrCode !== 0) throw new Error(`ctr run failed (exit ${ctrCode}): ${stderr.trim()}`);
    if (Date.now() > deadline) throw new Error(`the log never ended with the marker (${o.size} bytes so far; ctr ${ctrCode === undefined ? 'running' : `exit ${ctrCode}`})`);
    await sleep(2);
  }
  const code = await exited;
  if (code !== 0) throw new Error(`ctr run failed (exit ${code}): ${stderr.trim()}`);
} finally {
  if (ctrCode === undefined) ctr.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
}
const seconds = Number(last! - first!) / 1e9;
console.log(JSON.stringify({ mbPerSec: Math.round((bytes / 1e6 / seconds) * 10) / 10, seconds: Math.round(seconds * 1000) / 1000 }));
