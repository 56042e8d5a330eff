/**
 * A test-only Kubernetes CRI client (runtime.v1) on src/grpc: what a kubelet would send to
 * containerd's CRI plugin, reduced to the calls the e2e tests make, plus builders for a
 * host-network pod (no CNI needed, cri-on-our-machines.md) and a reader for the CRI log format.
 * Not part of the shipped binary: src/ holds only the proto subset and the generic gRPC layer.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ContainerState,
  ImageService,
  NamespaceMode,
  RuntimeService,
  type ContainerConfigSchema,
  type ContainerStatus,
  type PodSandboxConfigSchema,
} from '../../src/api/gen/runtime/v1/api_pb.ts';
import { GrpcConnection, grpcServiceClient, type GrpcServiceClient } from '../../src/grpc/client.ts';

export type PodSandboxConfigInit = MessageInitShape<typeof PodSandboxConfigSchema>;
export type ContainerConfigInit = MessageInitShape<typeof ContainerConfigSchema>;

/** The namespace containerd's CRI plugin keeps its images, containers and tasks in. */
export const CRI_NAMESPACE = 'k8s.io';

export class CriClient {
  readonly runtime: GrpcServiceClient<typeof RuntimeService.method>;
  readonly images: GrpcServiceClient<typeof ImageService.method>;
  readonly #conn: GrpcConnection;

  private constructor(conn: GrpcConnection) {
    this.#conn = conn;
    this.runtime = grpcServiceClient(conn, RuntimeService);
    this.images = grpcServiceClient(conn, ImageService);
  }

  /** `address`: containerd's main gRPC socket (the CRI plugin serves on it). */
  static open(address: string, defaultTimeoutMs = 60_000): CriClient {
    return new CriClient(GrpcConnection.unix(address, { defaultTimeoutMs }));
  }

  /**
   * Waits until CRI reports RuntimeReady. NetworkReady stays false without CNI, which
   * host-network pods do not need. The plugin loads asynchronously after containerd's socket
   * answers, so "unknown service" is retried until the deadline.
   */
  async waitRuntimeReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    for (;;) {
      try {
        const res = await this.runtime.status({}, { timeoutMs: 5_000, waitForReady: true });
        const ready = res.status?.conditions.find((c) => c.type === 'RuntimeReady');
        if (ready?.status) return;
        last = `RuntimeReady=${String(ready?.status)} ${ready?.reason ?? ''} ${ready?.message ?? ''}`;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() > deadline) throw new Error(`CRI runtime not ready after ${timeoutMs} ms: ${last}`);
      await sleep(200);
    }
  }

  /** Polls ContainerStatus until the container has exited; returns that status. */
  async waitExited(containerId: string, timeoutMs = 30_000): Promise<ContainerStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { status } = await this.runtime.containerStatus({ containerId });
      if (!status) throw new Error(`ContainerStatus ${containerId}: no status in the response`);
      if (status.state === ContainerState.CONTAINER_EXITED) return status;
      if (Date.now() > deadline) throw new Error(`container ${containerId} still in state ${status.state} after ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  close(): void {
    this.#conn.close();
  }
}

export interface HostNetworkPodOptions {
  readonly name: string;
  readonly uid: string;
  readonly namespace?: string;
  /** Container log paths are relative to it. */
  readonly logDirectory: string;
  readonly annotations?: Record<string, string>;
}

/**
 * A pod in the host's network namespace: no CNI, and no hostname (the pod shares the host's UTS
 * namespace, and runc refuses to set a hostname there).
 */
export function hostNetworkPod(opts: HostNetworkPodOptions): PodSandboxConfigInit {
  return {
    metadata: { name: opts.name, uid: opts.uid, namespace: opts.namespace ?? 'default', attempt: 0 },
    logDirectory: opts.logDirectory,
    annotations: opts.annotations ?? {},
    linux: {
      securityContext: {
        namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD },
      },
    },
  };
}

export interface SimpleContainerOptions {
  readonly name: string;
  readonly image: string;
  /** Replaces the image's entrypoint (Kubernetes `command`). */
  readonly command: readonly string[];
  /** Relative to the pod's log directory. */
  readonly logPath: string;
  readonly memoryLimitBytes?: number;
}

export function simpleContainer(opts: SimpleContainerOptions): ContainerConfigInit {
  return {
    metadata: { name: opts.name, attempt: 0 },
    image: { image: opts.image },
    command: [...opts.command],
    logPath: opts.logPath,
    linux: {
      resources: opts.memoryLimitBytes !== undefined ? { memoryLimitInBytes: BigInt(opts.memoryLimitBytes) } : {},
      securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD } },
    },
  };
}

/** One line of a CRI container log: `<RFC3339Nano time> <stdout|stderr> <F|P> <content>`. */
export interface CriLogLine {
  readonly time: string;
  readonly stream: 'stdout' | 'stderr';
  /** F = the line is complete, P = partial (split by the runtime's line-size limit). */
  readonly tag: 'F' | 'P';
  readonly content: string;
}

const LOG_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) (F|P) (.*)$/;

/** Parses a whole CRI log file; a line not in the format is an error naming its number. */
export function parseCriLog(text: string, source = 'CRI log'): CriLogLine[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((line, i) => {
    const m = LOG_LINE.exec(line);
    if (!m) throw new Error(`${source}:${i + 1}: not a CRI log line: ${JSON.stringify(line)}`);
    return { time: m[1]!, stream: m[2] as 'stdout' | 'stderr', tag: m[3] as 'F' | 'P', content: m[4]! };
  });
}
