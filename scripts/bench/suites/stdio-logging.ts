/**
 * Container output through the shim's stdio logging, ours (io.containerd.outrigger.v2) against
 * the stock Go containerd-shim-runc-v2 with the very same --log-uri, in one private containerd
 * 1.6 with runc: MB/s from the first byte in the log file to the last
 * (scripts/bench/stdio-throughput.ts). file:// is copied by the shim itself; binary:// hands the
 * pipes to a logger (outrigger-log writing CRI lines), so there the shims differ only in how
 * they set it up. Goal (issue #6): ≥ 0.9× the Go shim's MB/s.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type PrivateContainerd, startPrivateContainerd, SYSTEM_CTR } from '../../dev-containerd/private-containerd.ts';
import { buildTestImages } from '../../test-images.ts';
import type { RunContext, TimedBenchmark, Variant } from '../model.ts';
import { PINNED_NODE, ROOT, SEA } from '../paths.ts';
import { copySea } from '../sea-copy.ts';

const WORK = path.join(os.tmpdir(), `outrigger-bench-stdio-${process.pid}`);
const BIN = path.join(WORK, 'bin');
const TARGET = path.join(WORK, 'target.json');
const SCRIPT = path.join(ROOT, 'scripts/bench/stdio-throughput.ts');
const OURS = 'io.containerd.outrigger.v2';
const RUNC = 'io.containerd.runc.v2';
/** MB each run writes, and with --quick. */
const MB = { full: 200, quick: 20 };

let ctd: PrivateContainerd | undefined;
let users = 0;

async function setup(ctx: RunContext): Promise<string> {
  users++;
  if (ctd) return '';
  copySea(BIN, ['containerd-shim-outrigger-v2', 'outrigger-log'], 'stdio-logging');
  ctd = await startPrivateContainerd({ binDirs: [BIN] });
  const [image] = await buildTestImages({ outDir: path.join(WORK, 'images'), media: ['tar'], salt: `bench-stdio-${process.pid}` });
  if (!image) throw new Error('bench stdio-logging: buildTestImages built no image');
  await ctd.importImage(image.file);
  fs.writeFileSync(TARGET, JSON.stringify({ ctr: SYSTEM_CTR, address: ctd.address, namespace: ctd.namespace, fifoDir: ctd.fifoDir, image: image.name, quick: ctx.quick }));
  return `private containerd 1.6 with runc; ours from a copy of dist/bin/outrigger (${fs.statSync(SEA).size.toLocaleString('en-US')} B); logs under ${os.tmpdir()}`;
}

async function teardown(): Promise<void> {
  users--;
  if (users > 0) return;
  const instance = ctd;
  ctd = undefined;
  try {
    await instance?.stop();
  } finally {
    fs.rmSync(WORK, { recursive: true, force: true });
  }
}

function throughput(label: string, runtime: string, uri: string, peer?: string): Variant {
  return {
    label,
    argv: [PINNED_NODE, SCRIPT, '--target', TARGET, '--runtime', runtime, '--uri', uri, '--mb', String(MB.full), '--quick-mb', String(MB.quick)],
    display: `ctr run --rm --runtime ${runtime} --log-uri '${uri.replace(BIN, '…')}' busybox sh -c 'yes … | head -c ${MB.full}MB'`,
    setup,
    teardown,
    ...(peer ? { peer } : {}),
  };
}

const metrics = [
  { key: 'mbPerSec', label: 'MB/s', better: 'higher' },
  { key: 'seconds', label: 'seconds', better: 'lower' },
] as const;

export const stdioFile: TimedBenchmark = {
  kind: 'timed',
  name: 'stdio-file',
  title: `STDIO: file:// throughput, ${MB.full} MB`,
  what:
    `A busybox writes ${MB.full} MB of 100-byte lines (${MB.quick} MB with --quick) with \`ctr run --log-uri file://…\`; the shim copies ` +
    'the pipes into the file. MB/s from the first byte in the file to the last, ours against the Go runc shim with the same URI. ' +
    'The `maxSize` row rotates at 10 MB (Go ignores the parameter, so it is compared with the plain Go row). Goal: ≥ 0.9× Go.',
  variants: [
    throughput('outrigger.v2', OURS, 'file://{log}'),
    throughput('outrigger.v2 maxSize', OURS, 'file://{log}?maxSize=10MB&maxFiles=100'),
    throughput('runc.v2', RUNC, 'file://{log}'),
  ],
  metrics,
  ours: 'outrigger.v2',
  peer: 'runc.v2',
  rounds: 5,
  quickRounds: 1,
  warmupRounds: 1,
};

export const stdioBinary: TimedBenchmark = {
  kind: 'timed',
  name: 'stdio-binary',
  title: `STDIO: binary:// throughput with outrigger-log, ${MB.full} MB`,
  what:
    `The same ${MB.full} MB through \`--log-uri binary://…/outrigger-log?path=…&format=cri\`: the container's pipes go straight to the logger, ` +
    'which writes CRI lines. Under both shims the logger is the same binary, so the ratio shows what the shim adds (nothing in the ' +
    'data path). Goal: ≥ 0.9× Go.',
  variants: [
    throughput('outrigger.v2', OURS, `binary://${path.join(BIN, 'outrigger-log')}?path={log}&format=cri`),
    throughput('runc.v2', RUNC, `binary://${path.join(BIN, 'outrigger-log')}?path={log}&format=cri`),
  ],
  metrics,
  ours: 'outrigger.v2',
  peer: 'runc.v2',
  rounds: 5,
  quickRounds: 1,
  warmupRounds: 1,
};
