/**
 * CRI end to end: a kubelet's calls (our CRI v1 client over gRPC) drive containerd 1.6's CRI
 * plugin, whose runtime handler `outrigger` has runtime_type io.containerd.outrigger.v2 and an
 * options table pointing (ConfigPath) at a runtime options TOML this file writes. The same pod
 * also runs under the stock `runc` handler (io.containerd.runc.v2, the Go shim) and what a user
 * of the CRI can observe must be the same. Host-network pods, so no CNI; images imported into
 * k8s.io under docker.io/local/… names (cri-on-our-machines.md).
 *
 * What it proves for outrigger: the handler starts our shim with the TOML's options (runc state
 * lands under its Root); the sandbox and both containers of the pod are children of one shim
 * process; ExecSync stdout/stderr/exit code; exit codes and reasons in ContainerStatus
 * (OOMKilled needs TaskOOM from the shim); the CRI log file; and after StopPodSandbox +
 * RemovePodSandbox no shim process, socket, mount, runc entry or cgroup is left.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ContainerState, PodSandboxState } from '../../src/api/gen/runtime/v1/api_pb.ts';
import { CRI_NAMESPACE, hostNetworkPod, parseCriLog, simpleContainer } from '../support/cri-client.ts';
import { RUNC_ROOT_BASE } from '../../scripts/dev-containerd/instance-scan.ts';
import { pidAlive, shimSocketPath, uniqueId } from './harness.ts';
import { outriggerShims, waitFor } from './shim-support.ts';
import { pidFromInfo, ppidOf, runcList } from '../support/cri-pods.ts';
import { useCriInstance } from './cri-instance.ts';

const HANDLER = 'outrigger';
const instance = useCriInstance({ name: 'cri', handler: HANDLER });
const { ctd, client, runcRoot, logRoot, sandboxImage: SANDBOX_IMAGE, workloadImage: WORKLOAD_IMAGE, livePods } = instance;

/** The stock handler every CRI config has; the Go runc shim. */
const RUNC_HANDLER = 'runc';

/** Shim daemons of this containerd, ours or the Go runc shim. */
function shimPids(kind: 'outrigger' | 'runc'): number[] {
  if (kind === 'outrigger') return outriggerShims(ctd()).map((p) => p.pid);
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('containerd-shim-runc-v2') && argv.includes(ctd().address)) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

function logLines(file: string): { stream: string; tag: string; content: string }[] {
  return parseCriLog(fs.readFileSync(file, 'utf8'), file)
    .map(({ stream, tag, content }) => ({ stream, tag, content }))
    .sort((a, b) => (a.stream + a.content).localeCompare(b.stream + b.content));
}

/** What a CRI user sees of the pod; must be equal under both handlers. */
interface PodObservation {
  sandbox: { state: number; runtimeHandler: string };
  app: { state: number };
  batch: { state: number; exitCode: number; reason: string };
  exec: { stdout: string; stderr: string; exitCode: number };
  execTrue: { exitCode: number };
  appLog: { stream: string; tag: string; content: string }[];
  batchLog: { stream: string; tag: string; content: string }[];
  /** Distinct parents of the sandbox's and both containers' init processes: the shim(s) serving the pod. */
  initParents: number;
  shimProcesses: number;
}

interface RunningPod {
  podId: string;
  appId: string;
  batchId: string;
  initParentPids: number[];
  /** `runc list` of the options file's Root while all three ran. */
  runtimeEntries: string[];
  observation: PodObservation;
}

async function runPod(handler: string, shimKind: 'outrigger' | 'runc'): Promise<RunningPod> {
  const rt = client().runtime;
  const logDirectory = path.join(logRoot, uniqueId(handler));
  const config = hostNetworkPod({ name: uniqueId('cri-pod'), uid: uniqueId('uid'), logDirectory });
  const { podSandboxId: podId } = await rt.runPodSandbox({ config, runtimeHandler: handler });
  livePods.add(podId);

  const app = await rt.createContainer({
    podSandboxId: podId,
    sandboxConfig: config,
    config: simpleContainer({
      name: 'app',
      image: WORKLOAD_IMAGE,
      command: ['sh', '-c', 'echo hello-cri; echo to-stderr >&2; exec sleep 1000000'],
      logPath: 'app/0.log',
    }),
  });
  await rt.startContainer({ containerId: app.containerId });
  const batch = await rt.createContainer({
    podSandboxId: podId,
    sandboxConfig: config,
    config: simpleContainer({
      name: 'batch',
      image: WORKLOAD_IMAGE,
      // Runs until released (so its init can be looked at), then exits 3.
      command: ['sh', '-c', 'echo batch-out; while [ ! -e /tmp/release ]; do sleep 1; done; exit 3'],
      logPath: 'batch/0.log',
    }),
  });
  await rt.startContainer({ containerId: batch.containerId });

  const sandboxStatus = await rt.podSandboxStatus({ podSandboxId: podId, verbose: true });
  const appStatus = await rt.containerStatus({ containerId: app.containerId, verbose: true });
  const batchRunning = await rt.containerStatus({ containerId: batch.containerId, verbose: true });
  const initPids = [
    pidFromInfo(sandboxStatus.info, `sandbox ${podId}`),
    pidFromInfo(appStatus.info, `container ${app.containerId}`),
    pidFromInfo(batchRunning.info, `container ${batch.containerId}`),
  ];
  const initParentPids = [...new Set(initPids.map(ppidOf))];
  const runtimeEntries = await runcList(path.join(runcRoot, CRI_NAMESPACE));

  const release = await rt.execSync({ containerId: batch.containerId, cmd: ['sh', '-c', ': > /tmp/release'], timeout: 30n });
  expect(release.exitCode).toBe(0);
  const batchStatus = await client().waitExited(batch.containerId);
  const exec = await rt.execSync({ containerId: app.containerId, cmd: ['sh', '-c', 'echo exec-out; echo exec-err >&2; exit 7'], timeout: 30n });
  const execTrue = await rt.execSync({ containerId: app.containerId, cmd: ['true'], timeout: 30n });

  const appLogFile = path.join(logDirectory, 'app/0.log');
  await waitFor('both app log lines', () => (fs.existsSync(appLogFile) && logLines(appLogFile).length >= 2 ? true : undefined));

  return {
    podId,
    appId: app.containerId,
    batchId: batch.containerId,
    initParentPids,
    runtimeEntries,
    observation: {
      sandbox: { state: sandboxStatus.status!.state, runtimeHandler: sandboxStatus.status!.runtimeHandler },
      app: { state: appStatus.status!.state },
      batch: { state: batchStatus.state, exitCode: batchStatus.exitCode, reason: batchStatus.reason },
      exec: { stdout: new TextDecoder().decode(exec.stdout), stderr: new TextDecoder().decode(exec.stderr), exitCode: exec.exitCode },
      execTrue: { exitCode: execTrue.exitCode },
      appLog: logLines(appLogFile),
      batchLog: logLines(path.join(logDirectory, 'batch/0.log')),
      initParents: initParentPids.length,
      shimProcesses: shimPids(shimKind).length,
    },
  };
}

/** StopPodSandbox then RemovePodSandbox, as the kubelet does; then nothing of the pod may remain. */
async function removePod(podId: string): Promise<void> {
  const rt = client().runtime;
  await rt.stopPodSandbox({ podSandboxId: podId });
  const stopped = await rt.podSandboxStatus({ podSandboxId: podId });
  expect(stopped.status?.state).toBe(PodSandboxState.SANDBOX_NOTREADY);
  await rt.removePodSandbox({ podSandboxId: podId });
  livePods.delete(podId);
  const pods = await rt.listPodSandbox({});
  expect(pods.items.map((p) => p.id)).not.toContain(podId);
  const containers = await rt.listContainers({ filter: { podSandboxId: podId } });
  expect(containers.containers).toEqual([]);
}

/** Once every shim of the instance (ours and runc.v2) has exited: nothing of it left on the host. */
async function expectNothingLeft(): Promise<void> {
  await waitFor('every shim of the instance to exit', () => (shimPids('outrigger').length + shimPids('runc').length === 0 ? true : undefined));
  await instance.expectNothingLeft();
}

const observed = new Map<string, PodObservation>();

describe('CRI pods under the outrigger runtime handler', () => {
  it('CRI sees the images imported into k8s.io', async () => {
    const { images } = await client().images.listImages({});
    const tags = images.flatMap((i) => i.repoTags);
    expect(tags).toContain(SANDBOX_IMAGE);
    expect(tags).toContain(WORKLOAD_IMAGE);
    const status = await client().images.imageStatus({ image: { image: WORKLOAD_IMAGE } });
    expect(status.image?.repoTags).toContain(WORKLOAD_IMAGE);
    const missing = await client().images.imageStatus({ image: { image: 'docker.io/local/not-imported:latest' } });
    expect(missing.image).toBeUndefined();
  });

  it('runs a host-network pod with two containers in one outrigger shim, with the runtime options TOML, then removes it all', async () => {
    const pod = await runPod(HANDLER, 'outrigger');
    const o = pod.observation;
    expect(o.sandbox).toEqual({ state: PodSandboxState.SANDBOX_READY, runtimeHandler: HANDLER });
    expect(o.app.state).toBe(ContainerState.CONTAINER_RUNNING);
    expect(o.batch).toEqual({ state: ContainerState.CONTAINER_EXITED, exitCode: 3, reason: 'Error' });
    expect(o.exec).toEqual({ stdout: 'exec-out\n', stderr: 'exec-err\n', exitCode: 7 });
    expect(o.execTrue.exitCode).toBe(0);
    expect(o.appLog).toEqual([
      { stream: 'stderr', tag: 'F', content: 'to-stderr' },
      { stream: 'stdout', tag: 'F', content: 'hello-cri' },
    ]);
    expect(o.batchLog).toEqual([{ stream: 'stdout', tag: 'F', content: 'batch-out' }]);

    // One shim process for the whole pod: the sandbox's and both containers' inits are its children.
    const shims = outriggerShims(ctd());
    expect(shims).toHaveLength(1);
    expect(shims[0]!.argv).toContain(pod.podId);
    expect(pod.initParentPids).toEqual([shims[0]!.pid]);
    expect(fs.existsSync(shimSocketPath(ctd().address, CRI_NAMESPACE, pod.podId))).toBe(true);
    expect(shimPids('runc')).toEqual([]);
    // The shim ran runc with the TOML's Root: all three were there while they ran (CRI deletes
    // the exited batch task at once), and nothing of the pod is in the default root.
    expect(pod.runtimeEntries.sort()).toEqual([pod.podId, pod.appId, pod.batchId].sort());
    expect((await runcList(path.join(runcRoot, CRI_NAMESPACE))).sort()).toEqual([pod.podId, pod.appId].sort());
    const inDefaultRoot = await runcList(path.join(RUNC_ROOT_BASE, CRI_NAMESPACE));
    expect(inDefaultRoot.filter((id) => [pod.podId, pod.appId, pod.batchId].includes(id))).toEqual([]);

    await removePod(pod.podId);
    await waitFor('the pod shim to exit', () => (pidAlive(shims[0]!.pid) ? undefined : true));
    expect(fs.existsSync(shimSocketPath(ctd().address, CRI_NAMESPACE, pod.podId))).toBe(false);
    await expectNothingLeft();
    observed.set(HANDLER, o);
  });

  it('the same pod under the stock runc handler: the same exit codes, exec results and log lines', async () => {
    const pod = await runPod(RUNC_HANDLER, 'runc');
    expect(pod.observation.sandbox.runtimeHandler).toBe(RUNC_HANDLER);
    await removePod(pod.podId);
    await expectNothingLeft();
    const ours = observed.get(HANDLER);
    expect(ours, 'the outrigger pod test ran first').toBeDefined();
    expect({ ...ours!, sandbox: { ...ours!.sandbox, runtimeHandler: '' } }).toEqual({
      ...pod.observation,
      sandbox: { ...pod.observation.sandbox, runtimeHandler: '' },
    });
  });

  // Exit 137 and reason OOMKilled: CRI sets the reason only on a TaskOOM event from the shim
  // (published before the TaskExit), so this is the end-to-end check of the shim's OOM detection.
  for (const [handler, shimKind] of [
    [HANDLER, 'outrigger'],
    [RUNC_HANDLER, 'runc'],
  ] as const) {
    it(`a container over its 8 MiB memory limit ends OOMKilled with exit code 137 (${handler} handler)`, async () => {
      const rt = client().runtime;
      const config = hostNetworkPod({ name: uniqueId('cri-oom'), uid: uniqueId('uid'), logDirectory: path.join(logRoot, uniqueId('oom')) });
      const { podSandboxId: podId } = await rt.runPodSandbox({ config, runtimeHandler: handler });
      livePods.add(podId);
      const hog = await rt.createContainer({
        podSandboxId: podId,
        sandboxConfig: config,
        config: simpleContainer({
          name: 'hog',
          image: WORKLOAD_IMAGE,
          // dd's 64 MiB block buffer is filled from /dev/zero: the cgroup's 8 MiB cannot hold it.
          // It waits to be released: shims (the Go one too) arm their OOM watch while handling
          // Start, and an OOM before that is not reported, so the allocation comes after
          // StartContainer has returned.
          command: ['sh', '-c', 'while [ ! -e /tmp/release ]; do sleep 1; done; exec dd if=/dev/zero of=/dev/null bs=64M count=4'],
          logPath: 'hog/0.log',
          memoryLimitBytes: 8 * 1024 * 1024,
        }),
      });
      await rt.startContainer({ containerId: hog.containerId });
      expect(shimPids(shimKind).length).toBe(1);
      const release = await rt.execSync({ containerId: hog.containerId, cmd: ['sh', '-c', ': > /tmp/release'], timeout: 30n });
      expect(release.exitCode).toBe(0);
      const exited = await client().waitExited(hog.containerId);
      expect(exited.exitCode).toBe(137);
      // containerd 1.6's CRI takes the exit from its Wait on the task and the reason from the
      // TaskOOM event, two paths that race; a kubelet polls the status again, so may this test.
      const reason = await waitFor(
        'reason OOMKilled',
        async () => {
          const { status } = await rt.containerStatus({ containerId: hog.containerId });
          return status?.reason === 'OOMKilled' ? status.reason : undefined;
        },
        5_000,
      ).catch(async () => (await rt.containerStatus({ containerId: hog.containerId })).status?.reason);
      expect(reason).toBe('OOMKilled');
      await removePod(podId);
      await expectNothingLeft();
    });
  }
});
