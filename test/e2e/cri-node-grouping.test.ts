/**
 * ShimGrouping = "node" through Kubernetes' CRI: a runtime handler whose options TOML (CRI's
 * runtimeoptions ConfigPath) sets the node grouping serves every pod of the k8s.io namespace from
 * one shim process. Two pods started under it: their sandboxes and containers are all children
 * of that one process, each pod's exec, exit code and CRI log work as with the default grouping;
 * removing the first pod leaves the shim serving the second; removing the last takes the shim,
 * its socket, the mounts and the runc entries with it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ContainerState, PodSandboxState } from '../../src/api/gen/runtime/v1/api_pb.ts';
import { CRI_NAMESPACE, CriClient, hostNetworkPod, parseCriLog, simpleContainer } from '../support/cri-client.ts';
import { pidFromInfo, ppidOf, RUNC, runcList } from '../support/cri-pods.ts';
import { buildTestImages } from '../../scripts/test-images.ts';
import { RUNC_ROOT_BASE } from '../../scripts/dev-containerd/instance-scan.ts';
import { describeLeftovers, pidAlive, shimSocketPath, uniqueId, useContainerd } from './harness.ts';
import { OUTRIGGER, outriggerShims, pinnedShimBinDir, waitFor } from './shim-support.ts';

const HANDLER = 'outrigger-node';
const NODE_GROUP = '@node';
const SANDBOX_IMAGE_PREFIX = 'docker.io/local/outrigger-crinode-pause';
const SANDBOX_IMAGE = `${SANDBOX_IMAGE_PREFIX}-tar:latest`;
const WORKLOAD_IMAGE_PREFIX = 'docker.io/local/outrigger-crinode-busybox';
const WORKLOAD_IMAGE = `${WORKLOAD_IMAGE_PREFIX}-tar:latest`;

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-cri-node-'));
const runcRoot = fs.mkdtempSync('/run/outrigger-cri-node-runc-');
const optionsFile = path.join(work, 'runtime-options.toml');
fs.writeFileSync(optionsFile, `BinaryName = "runc"\nRoot = "${runcRoot}"\nShimGrouping = "node"\n`);
const logRoot = path.join(work, 'pods');

let cri: CriClient | undefined;
// Registered before useContainerd's teardown, so it runs after it (hooks run in stack order).
afterAll(() => {
  cri?.close();
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(runcRoot, { recursive: true, force: true });
});

const ctd = useContainerd({
  binDirs: [pinnedShimBinDir()],
  cri: {
    sandboxImage: SANDBOX_IMAGE,
    runtimes: { [HANDLER]: { runtimeType: OUTRIGGER, options: { ConfigPath: optionsFile } } },
  },
  ociRuntimes: [
    { binary: RUNC, rootBase: RUNC_ROOT_BASE },
    { binary: RUNC, rootBase: runcRoot },
  ],
});

function client(): CriClient {
  if (!cri) throw new Error('CRI client not open (did beforeAll fail?)');
  return cri;
}

beforeAll(async () => {
  const salt = `crinode-${process.pid}`;
  const [pause] = await buildTestImages({
    outDir: path.join(work, 'images'),
    media: ['tar'],
    salt,
    repositoryPrefix: SANDBOX_IMAGE_PREFIX,
    cmd: ['/bin/sleep', '1000000'],
  });
  const [busybox] = await buildTestImages({ outDir: path.join(work, 'images-busybox'), media: ['tar'], salt, repositoryPrefix: WORKLOAD_IMAGE_PREFIX });
  await ctd().importImage(pause!.file, { namespace: CRI_NAMESPACE });
  await ctd().importImage(busybox!.file, { namespace: CRI_NAMESPACE });
  cri = CriClient.open(ctd().address);
  await cri.waitRuntimeReady();
});

const livePods = new Set<string>();
afterEach(async () => {
  for (const podSandboxId of livePods) {
    livePods.delete(podSandboxId);
    await client().runtime.stopPodSandbox({ podSandboxId }).catch(() => undefined);
    await client().runtime.removePodSandbox({ podSandboxId }).catch(() => undefined);
  }
});

interface NodePod {
  podId: string;
  appId: string;
  logFile: string;
  /** Parents of the sandbox's and the app's init processes. */
  initParents: number[];
}

async function startPod(tag: string): Promise<NodePod> {
  const rt = client().runtime;
  const logDirectory = path.join(logRoot, uniqueId(tag));
  const config = hostNetworkPod({ name: uniqueId(`crinode-${tag}`), uid: uniqueId('uid'), logDirectory });
  const { podSandboxId: podId } = await rt.runPodSandbox({ config, runtimeHandler: HANDLER });
  livePods.add(podId);
  const app = await rt.createContainer({
    podSandboxId: podId,
    sandboxConfig: config,
    config: simpleContainer({ name: 'app', image: WORKLOAD_IMAGE, command: ['sh', '-c', `echo hello-${tag}; exec sleep 1000000`], logPath: 'app/0.log' }),
  });
  await rt.startContainer({ containerId: app.containerId });
  const sandbox = await rt.podSandboxStatus({ podSandboxId: podId, verbose: true });
  const status = await rt.containerStatus({ containerId: app.containerId, verbose: true });
  expect(sandbox.status?.state).toBe(PodSandboxState.SANDBOX_READY);
  expect(status.status?.state).toBe(ContainerState.CONTAINER_RUNNING);
  const inits = [pidFromInfo(sandbox.info, `sandbox ${podId}`), pidFromInfo(status.info, `container ${app.containerId}`)];
  return { podId, appId: app.containerId, logFile: path.join(logDirectory, 'app/0.log'), initParents: [...new Set(inits.map(ppidOf))] };
}

async function execIn(pod: NodePod, tag: string): Promise<void> {
  const r = await client().runtime.execSync({ containerId: pod.appId, cmd: ['sh', '-c', `echo exec-${tag}; exit 5`], timeout: 30n });
  expect({ stdout: new TextDecoder().decode(r.stdout), exitCode: r.exitCode }).toEqual({ stdout: `exec-${tag}\n`, exitCode: 5 });
  await waitFor(`${tag}'s log line`, () => (fs.existsSync(pod.logFile) ? parseCriLog(fs.readFileSync(pod.logFile, 'utf8'), pod.logFile).find((l) => l.content === `hello-${tag}`) : undefined));
}

async function removePod(podId: string): Promise<void> {
  await client().runtime.stopPodSandbox({ podSandboxId: podId });
  await client().runtime.removePodSandbox({ podSandboxId: podId });
  livePods.delete(podId);
}

describe('CRI pods under a runtime handler with ShimGrouping = "node"', () => {
  it('two pods share one shim process, which outlives the first pod and leaves with the last', async () => {
    const a = await startPod('a');
    const b = await startPod('b');
    const shims = outriggerShims(ctd());
    expect(shims).toHaveLength(1);
    const shim = shims[0]!;
    // Every init of both pods (two sandboxes, two apps) is a child of the one node shim.
    expect([...new Set([...a.initParents, ...b.initParents])]).toEqual([shim.pid]);
    expect(fs.existsSync(shimSocketPath(ctd().address, CRI_NAMESPACE, NODE_GROUP))).toBe(true);
    expect((await runcList(path.join(runcRoot, CRI_NAMESPACE))).sort()).toEqual([a.podId, a.appId, b.podId, b.appId].sort());
    await execIn(a, 'a');
    await execIn(b, 'b');

    await removePod(a.podId);
    // The second pod is still served by the same process.
    await execIn(b, 'b');
    expect(outriggerShims(ctd()).map((p) => p.pid)).toEqual([shim.pid]);
    expect((await runcList(path.join(runcRoot, CRI_NAMESPACE))).sort()).toEqual([b.podId, b.appId].sort());

    await removePod(b.podId);
    await waitFor('the node shim to exit with the last pod', () => (pidAlive(shim.pid) ? undefined : true), 30_000);
    expect(fs.existsSync(shimSocketPath(ctd().address, CRI_NAMESPACE, NODE_GROUP))).toBe(false);
    const left = ctd().leftovers();
    const rest = { ...left, processes: left.processes.filter((p) => p.pid !== ctd().pid), files: [] };
    expect(rest, describeLeftovers(rest)).toEqual({ processes: [], mounts: [], sockets: [], runtimeEntries: [], cgroups: [], files: [] });
    expect(await runcList(path.join(runcRoot, CRI_NAMESPACE))).toEqual([]);
  });
});
