/**
 * A private containerd with its CRI plugin on, for the CRI e2e files: one runtime handler of ours
 * (io.containerd.outrigger.v2) whose runtimeoptions ConfigPath names a TOML this module writes,
 * with a runc root of its own named only in that TOML (state appearing there proves the shim got
 * its options through CRI), a pause-like sandbox image and a busybox workload image imported
 * into k8s.io, an open CRI client, and pods a test left behind removed after each test.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { CRI_NAMESPACE, CriClient } from '../support/cri-client.ts';
import { RUNC, runcList } from '../support/cri-pods.ts';
import { buildTestImages } from '../../scripts/test-images.ts';
import { RUNC_ROOT_BASE } from '../../scripts/dev-containerd/instance-scan.ts';
import { describeLeftovers, type PrivateContainerd, useContainerd } from './harness.ts';
import { OUTRIGGER, pinnedShimBinDir } from './shim-support.ts';

export interface CriInstanceOptions {
  /** Names the temp dirs and the images (`docker.io/local/outrigger-<name>-…`). */
  readonly name: string;
  readonly handler: string;
  /** Lines of the runtime options TOML besides `BinaryName` and `Root`. */
  readonly extraOptions?: string;
}

export interface CriInstance {
  readonly ctd: () => PrivateContainerd;
  readonly client: () => CriClient;
  readonly runcRoot: string;
  /** Where pods' log directories go. */
  readonly logRoot: string;
  readonly sandboxImage: string;
  readonly workloadImage: string;
  /** Pods a test started and has not removed; removed after each test so one failure does not cascade. */
  readonly livePods: Set<string>;
  /**
   * Asserts that nothing of the instance is left on the host but containerd itself and its
   * directory: no process, mount, socket, runtime entry or cgroup, and an empty runc root for
   * the CRI namespace. For after the shims have exited.
   */
  expectNothingLeft(): Promise<void>;
}

export function useCriInstance(opts: CriInstanceOptions): CriInstance {
  const sandboxPrefix = `docker.io/local/outrigger-${opts.name}-pause`;
  const workloadPrefix = `docker.io/local/outrigger-${opts.name}-busybox`;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `outrigger-${opts.name}-`));
  const runcRoot = fs.mkdtempSync(`/run/outrigger-${opts.name}-runc-`);
  const optionsFile = path.join(work, 'runtime-options.toml');
  fs.writeFileSync(optionsFile, `BinaryName = "runc"\nRoot = "${runcRoot}"\n${opts.extraOptions ?? ''}`);

  let cri: CriClient | undefined;
  // Registered before useContainerd's teardown so that, hooks running in stack order, it runs
  // after it: the harness still needs the runc root (to delete entries a failed test left).
  afterAll(() => {
    cri?.close();
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(runcRoot, { recursive: true, force: true });
  });

  const sandboxImage = `${sandboxPrefix}-tar:latest`;
  const ctd = useContainerd({
    binDirs: [pinnedShimBinDir()],
    cri: {
      sandboxImage,
      runtimes: { [opts.handler]: { runtimeType: OUTRIGGER, options: { ConfigPath: optionsFile } } },
    },
    ociRuntimes: [
      { binary: RUNC, rootBase: RUNC_ROOT_BASE },
      { binary: RUNC, rootBase: runcRoot },
    ],
  });

  const client = (): CriClient => {
    if (!cri) throw new Error('CRI client not open (did beforeAll fail?)');
    return cri;
  };

  beforeAll(async () => {
    const salt = `${opts.name}-${process.pid}`;
    const [pause] = await buildTestImages({ outDir: path.join(work, 'images'), media: ['tar'], salt, repositoryPrefix: sandboxPrefix, cmd: ['/bin/sleep', '1000000'] });
    const [busybox] = await buildTestImages({ outDir: path.join(work, 'images-busybox'), media: ['tar'], salt, repositoryPrefix: workloadPrefix });
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

  const expectNothingLeft = async (): Promise<void> => {
    const left = ctd().leftovers();
    const rest = { ...left, processes: left.processes.filter((p) => p.pid !== ctd().pid), files: [] };
    expect(rest, describeLeftovers(rest)).toEqual({ processes: [], mounts: [], sockets: [], runtimeEntries: [], cgroups: [], files: [] });
    expect(await runcList(path.join(runcRoot, CRI_NAMESPACE))).toEqual([]);
  };

  return { ctd, client, runcRoot, logRoot: path.join(work, 'pods'), sandboxImage, workloadImage: `${workloadPrefix}-tar:latest`, livePods, expectNothingLeft };
}
