/**
 * ShimGrouping = "node" through Kubernetes' CRI: a runtime handler whose options TOML (CRI's
 * runtimeoptions ConfigPath) sets the node grouping serves every pod of the k8s.io namespace from
 * one shim process. Two pods started under it: their sandboxes and containers are all children
 * of that one process, each pod's exec, exit code and CRI log work as with the default grouping;
 * removing the first pod leaves the shim serving the second; removing the last takes the shim,
 * its socket, the mounts and the runc entries with it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ContainerState, PodSandboxState } from '../../src/api/gen/runtime/v1/api_pb.ts';
import { CRI_NAMESPACE, hostNetworkPod, parseCriLog, simpleContainer } from '../support/cri-client.ts';
import { pidFromInfo, ppidOf, runcList } from '../support/cri-pods.ts';
import { pidAlive, shimSocketPath, uniqueId } from './harness.ts';
import { outriggerShims, waitFor } from './shim-support.ts';
import { useCriInstance } from './cri-instance.ts';

const HANDLER = 'outrigger-node';
const NODE_GROUP = '@node';
const { ctd, client, runcRoot, logRoot, workloadImage: WORKLOAD_IMAGE, livePods, expectNothingLeft } = useCriInstance({
  name: 'cri-node',
  handler: HANDLER,
  extraOptions: 'ShimGrouping = "node"\n',
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
    await expectNothingLeft();
  });
});
