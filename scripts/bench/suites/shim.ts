/**
 * containerd-shim-outrigger-v2 against the stock containerd-shim-runc-v2, side by side in one
 * private containerd 1.6 with the same runc: `ctr run --rm … true` latency (the whole task
 * life: start, Create, Start, Wait, Delete, Shutdown, the `delete` binary), and the memory of
 * one idle shim serving a running container. Our shim runs from a copy of the SEA taken at
 * setup, since other work rebuilds dist/ at any time.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type PrivateContainerd, startPrivateContainerd, SYSTEM_CTR } from '../../dev-containerd/private-containerd.ts';
import { buildTestImages } from '../../test-images.ts';
import type { TimedBenchmark, Variant } from '../model.ts';
import { PINNED_NODE, ROOT, SEA } from '../paths.ts';
import { copySea } from '../sea-copy.ts';

const WORK = path.join(os.tmpdir(), `outrigger-bench-shim-${process.pid}`);
const BIN = path.join(WORK, 'bin');
const TARGET = path.join(WORK, 'target.json');
const ENV_FILE = path.join(WORK, 'target.env');
const IDLE_SCRIPT = path.join(ROOT, 'scripts/bench/shim-idle-memory.ts');
const OURS = 'io.containerd.outrigger.v2';
const RUNC = 'io.containerd.runc.v2';
/** Idle shims measured together for the shared-pages figure. */
const IDLE_COPIES = 10;

let ctd: PrivateContainerd | undefined;
let users = 0;

async function setup(): Promise<string> {
  users++;
  if (ctd) return '';
  copySea(BIN, ['containerd-shim-outrigger-v2'], 'shim');
  ctd = await startPrivateContainerd({ binDirs: [BIN] });
  const [image] = await buildTestImages({ outDir: path.join(WORK, 'images'), media: ['tar'], salt: `bench-shim-${process.pid}` });
  if (!image) throw new Error('bench shim: buildTestImages built no image');
  await ctd.importImage(image.file);
  const target = { ctr: SYSTEM_CTR, address: ctd.address, namespace: ctd.namespace, fifoDir: ctd.fifoDir, image: image.name };
  fs.writeFileSync(TARGET, JSON.stringify(target));
  fs.writeFileSync(
    ENV_FILE,
    Object.entries({ CTR: target.ctr, ADDR: target.address, NS: target.namespace, FIFO: target.fifoDir, IMG: target.image })
      .map(([k, v]) => `${k}='${v}'\n`)
      .join(''),
  );
  return `private containerd 1.6 with runc; ours from a copy of dist/bin/outrigger (${fs.statSync(SEA).size.toLocaleString('en-US')} B)`;
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

function runRm(label: string, runtime: string): Variant {
  return {
    label,
    // A fresh id per run: $$ is the shell's pid. Sourcing the target costs both rows the same.
    argv: ['sh', '-c', `. '${ENV_FILE}'; exec "$CTR" --address "$ADDR" --namespace "$NS" run --rm --fifo-dir "$FIFO" --runtime ${runtime} "$IMG" "bench-$$" true`],
    display: `ctr run --rm --runtime ${runtime} busybox bench-$$ true`,
    setup,
    teardown,
  };
}

function idle(label: string, runtime: string): Variant {
  return {
    label,
    argv: [PINNED_NODE, IDLE_SCRIPT, '--target', TARGET, '--runtime', runtime, '--copies', String(IDLE_COPIES)],
    display: `node scripts/bench/shim-idle-memory.ts --runtime ${runtime} --copies ${IDLE_COPIES}`,
    setup,
    teardown,
  };
}

export const shimRunLatency: TimedBenchmark = {
  kind: 'timed',
  name: 'shim-run',
  title: 'Shim: ctr run --rm … true',
  what:
    'Wall time of `ctr run --rm` of a busybox `true` in a private containerd 1.6 with runc 1.1.5, through our shim ' +
    '(`io.containerd.outrigger.v2`) and through the stock Go `containerd-shim-runc-v2` (`io.containerd.runc.v2`, the ' +
    'peer). It covers the whole task life as containerd drives it: `start` (spawn the shim daemon), Create (rootfs mount, ' +
    '`runc create`), Start, Wait, Delete, Shutdown and the `delete` binary containerd runs afterwards. Goal: ≤ 1.15× runc.v2.',
  variants: [runRm('outrigger.v2', OURS), runRm('runc.v2', RUNC)],
  ours: 'outrigger.v2',
  peer: 'runc.v2',
  rounds: 30,
  quickRounds: 3,
  warmupRounds: 2,
};

export const shimIdleMemory: TimedBenchmark = {
  kind: 'timed',
  name: 'shim-idle-memory',
  title: 'Shim: memory of idle shims',
  what:
    'Memory of shims each serving one running `sleep` container, 1 s after `ctr run -d` returned, from ' +
    '`/proc/<pid>/smaps_rollup`: ours (a Node 26 SEA) against the stock Go `containerd-shim-runc-v2`. Rss and Pss of a ' +
    'lone shim, where Pss still counts every page of the executable it touched as its own; and the mean Pss of ' +
    `${IDLE_COPIES} such shims running at once, where those file pages are shared ${IDLE_COPIES} ways: the per-shim cost on a node ` +
    'running many.',
  variants: [idle('outrigger.v2', OURS), idle('runc.v2', RUNC)],
  metrics: [
    { key: 'pssPerShimKiB', label: `Pss KiB per shim (${IDLE_COPIES} shims)`, better: 'lower' },
    { key: 'pssKiB', label: 'Pss KiB (1 shim)', better: 'lower' },
    { key: 'rssKiB', label: 'Rss KiB (1 shim)', better: 'lower' },
  ],
  ours: 'outrigger.v2',
  peer: 'runc.v2',
  rounds: 5,
  quickRounds: 1,
  warmupRounds: 0,
};
