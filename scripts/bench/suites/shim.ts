/**
 * containerd-shim-outrigger-v2 against the stock containerd-shim-runc-v2, side by side in one
 * private containerd 1.6 with the same runc: `ctr run --rm … true` latency (the whole task
 * life: start, Create, Start, Wait, Delete, Shutdown, the `delete` binary), also with
 * ShimGrouping = "node" where a running shim of the namespace serves the run; and the memory of
 * idle shims: 20 containers with a shim each, one pod of 5 containers, and 100 containers with
 * one node shim against 100 Go shims (scripts/bench/shim-idle-memory.ts). Our shim runs from a
 * copy of the SEA taken at setup, since other work rebuilds dist/ at any time.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type PrivateContainerd, startPrivateContainerd, SYSTEM_CTR } from '../../dev-containerd/private-containerd.ts';
import { buildTestImages } from '../../test-images.ts';
import type { RunContext, TimedBenchmark, Variant } from '../model.ts';
import { PINNED_NODE, ROOT, SEA } from '../paths.ts';
import { copySea } from '../sea-copy.ts';

const WORK = path.join(os.tmpdir(), `outrigger-bench-shim-${process.pid}`);
const BIN = path.join(WORK, 'bin');
const TARGET = path.join(WORK, 'target.json');
const ENV_FILE = path.join(WORK, 'target.env');
const IDLE_SCRIPT = path.join(ROOT, 'scripts/bench/shim-idle-memory.ts');
const OURS = 'io.containerd.outrigger.v2';
const RUNC = 'io.containerd.runc.v2';
const NODE_OPTIONS_FILE = path.join(WORK, 'node.toml');
/** Containers per memory scenario, and with --quick. */
const IDLE_CONTAINERS = { full: 20, quick: 5 };
const POD_CONTAINERS = { full: 5, quick: 5 };
const NODE_CONTAINERS = { full: 100, quick: 20 };
/** The detached task that keeps the node shim alive while `shim-run` measures node mode. */
const KEEPER = `bench-node-keeper-${process.pid}`;

let ctd: PrivateContainerd | undefined;
let users = 0;

async function setup(ctx: RunContext): Promise<string> {
  users++;
  if (ctd) return '';
  copySea(BIN, ['containerd-shim-outrigger-v2'], 'shim');
  ctd = await startPrivateContainerd({ binDirs: [BIN] });
  const [image] = await buildTestImages({ outDir: path.join(WORK, 'images'), media: ['tar'], salt: `bench-shim-${process.pid}` });
  if (!image) throw new Error('bench shim: buildTestImages built no image');
  await ctd.importImage(image.file);
  const target = { ctr: SYSTEM_CTR, address: ctd.address, namespace: ctd.namespace, fifoDir: ctd.fifoDir, image: image.name, quick: ctx.quick };
  fs.writeFileSync(TARGET, JSON.stringify(target));
  fs.writeFileSync(NODE_OPTIONS_FILE, 'ShimGrouping = "node"\n');
  fs.writeFileSync(
    ENV_FILE,
    Object.entries({ CTR: target.ctr, ADDR: target.address, NS: target.namespace, FIFO: target.fifoDir, IMG: target.image, NODE_OPTS: NODE_OPTIONS_FILE })
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

function runRm(label: string, runtime: string, extra = '', hooks: Pick<Variant, 'setup' | 'teardown'> = { setup, teardown }): Variant {
  return {
    label,
    // A fresh id per run: $$ is the shell's pid. Sourcing the target costs both rows the same.
    argv: ['sh', '-c', `. '${ENV_FILE}'; exec "$CTR" --address "$ADDR" --namespace "$NS" run --rm --fifo-dir "$FIFO" --runtime ${runtime}${extra} "$IMG" "bench-$$" true`],
    display: `ctr run --rm --runtime ${runtime}${extra.replace('"$NODE_OPTS"', 'node.toml')} busybox bench-$$ true`,
    ...hooks,
  };
}

function ctrArgs(args: string[]): string[] {
  const target = JSON.parse(fs.readFileSync(TARGET, 'utf8')) as { address: string; namespace: string };
  return ['--address', target.address, '--namespace', target.namespace, ...args];
}

/** Node mode as a node runs it: a shim of the namespace is already up, serving a long-lived task. */
const nodeKeeper: Pick<Variant, 'setup' | 'teardown'> = {
  setup: async (ctx) => {
    await setup(ctx);
    const target = JSON.parse(fs.readFileSync(TARGET, 'utf8')) as { fifoDir: string; image: string };
    execFileSync(SYSTEM_CTR, ctrArgs(['run', '-d', '--fifo-dir', target.fifoDir, '--runtime', OURS, '--runtime-config-path', NODE_OPTIONS_FILE, target.image, KEEPER, 'sleep', '100000']), { stdio: 'ignore' });
    return 'ShimGrouping = "node", with one detached task of the namespace keeping the node shim up';
  },
  teardown: async () => {
    try {
      execFileSync(SYSTEM_CTR, ctrArgs(['tasks', 'kill', '--signal', 'SIGKILL', KEEPER]), { stdio: 'ignore' });
      for (let i = 0; i < 100; i++) {
        const ls = execFileSync(SYSTEM_CTR, ctrArgs(['tasks', 'ls']), { encoding: 'utf8' });
        if (!ls.split('\n').some((l) => l.startsWith(`${KEEPER} `) && /RUNNING/.test(l))) break;
        await sleep(50);
      }
      execFileSync(SYSTEM_CTR, ctrArgs(['tasks', 'delete', KEEPER]), { stdio: 'ignore' });
      execFileSync(SYSTEM_CTR, ctrArgs(['containers', 'rm', KEEPER]), { stdio: 'ignore' });
    } finally {
      await teardown();
    }
  },
};

function memory(label: string, runtime: string, scenario: 'idle' | 'pod' | 'node', containers: { full: number; quick: number }): Variant {
  const args = ['--target', TARGET, '--runtime', runtime, '--scenario', scenario, '--containers', String(containers.full), '--quick-containers', String(containers.quick)];
  return {
    label,
    argv: [PINNED_NODE, IDLE_SCRIPT, ...args],
    display: `node scripts/bench/shim-idle-memory.ts --runtime ${runtime} --scenario ${scenario} --containers ${containers.full}`,
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
    '`runc create`), Start, Wait, Delete, Shutdown and the `delete` binary containerd runs afterwards. Goal: ≤ 1.15× runc.v2. ' +
    'The `node` row runs with `ShimGrouping = "node"` while another task of the namespace keeps the node shim up, as on a ' +
    'busy node: its `start` joins the running shim instead of spawning one. Both rows still pay two Node start-ups per ' +
    'task (`start` and `delete`), which containerd 1.6 runs as separate processes.',
  variants: [runRm('outrigger.v2', OURS), runRm('outrigger.v2 node', OURS, ' --runtime-config-path "$NODE_OPTS"', nodeKeeper), runRm('runc.v2', RUNC)],
  ours: 'outrigger.v2',
  peer: 'runc.v2',
  rounds: 30,
  quickRounds: 3,
  warmupRounds: 2,
};

export const shimIdleMemory: TimedBenchmark = {
  kind: 'timed',
  name: 'shim-idle-memory',
  title: `Shim: ${IDLE_CONTAINERS.full} idle containers, one shim each`,
  what:
    `Memory of the shims of ${IDLE_CONTAINERS.full} detached \`sleep\` containers (${IDLE_CONTAINERS.quick} with --quick), each with its own shim, ` +
    '5 s after the last `ctr run -d` returned, from `/proc/<pid>/smaps_rollup`: ours (a Node 26 SEA, default pod grouping) ' +
    'against the stock Go `containerd-shim-runc-v2`. Pss splits each shared page (the executable) among the shims mapping ' +
    'it, so the mean Pss per shim is what each costs the node; Anonymous is the private heap. Goal (issue #5): total ≤ 3× Go.',
  variants: [memory('outrigger.v2', OURS, 'idle', IDLE_CONTAINERS), memory('runc.v2', RUNC, 'idle', IDLE_CONTAINERS)],
  metrics: [
    { key: 'pssPerShimKiB', label: 'Pss KiB per shim', better: 'lower' },
    { key: 'totalPssKiB', label: 'Pss KiB, all shims', better: 'lower' },
    { key: 'rssPerShimKiB', label: 'Rss KiB per shim', better: 'lower' },
    { key: 'anonPerShimKiB', label: 'Anonymous KiB per shim', better: 'lower' },
  ],
  ours: 'outrigger.v2',
  peer: 'runc.v2',
  rounds: 5,
  quickRounds: 1,
  warmupRounds: 0,
};

export const shimPodMemory: TimedBenchmark = {
  kind: 'timed',
  name: 'shim-pod-memory',
  title: `Shim: one pod of ${POD_CONTAINERS.full} containers`,
  what:
    `${POD_CONTAINERS.full} detached containers carrying one \`io.kubernetes.cri.sandbox-id\`, as CRI starts the containers of a pod: ` +
    'both shims serve them from one process. Total Pss of the shim processes and their number, 5 s after the last start.',
  variants: [memory('outrigger.v2', OURS, 'pod', POD_CONTAINERS), memory('runc.v2', RUNC, 'pod', POD_CONTAINERS)],
  metrics: [
    { key: 'totalPssKiB', label: 'Pss KiB, all shims', better: 'lower' },
    { key: 'shims', label: 'shim processes', better: 'lower' },
    { key: 'anonPerShimKiB', label: 'Anonymous KiB per shim', better: 'lower' },
  ],
  ours: 'outrigger.v2',
  peer: 'runc.v2',
  rounds: 3,
  quickRounds: 1,
  warmupRounds: 0,
};

export const shimNodeMemory: TimedBenchmark = {
  kind: 'timed',
  name: 'shim-node-memory',
  title: `Shim: ${NODE_CONTAINERS.full} containers, one node shim against one Go shim each`,
  what:
    `${NODE_CONTAINERS.full} detached \`sleep\` containers (${NODE_CONTAINERS.quick} with --quick): ours with \`ShimGrouping = "node"\` (one shim ` +
    'process serves the namespace) against the stock Go shim, which runs one process per container. Total Pss of all ' +
    'shim processes 5 s after the last start. Goal (issue #5): below the Go total.',
  variants: [memory('outrigger.v2 node', OURS, 'node', NODE_CONTAINERS), memory('runc.v2', RUNC, 'node', NODE_CONTAINERS)],
  metrics: [
    { key: 'totalPssKiB', label: 'Pss KiB, all shims', better: 'lower' },
    { key: 'shims', label: 'shim processes', better: 'lower' },
    { key: 'pssPerContainerKiB', label: 'Pss KiB per container', better: 'lower' },
  ],
  ours: 'outrigger.v2 node',
  peer: 'runc.v2',
  rounds: 3,
  quickRounds: 1,
  warmupRounds: 0,
};
