/**
 * One container inside the shim: its init process, its execs by id, the OCI runtime settings
 * it was created with, and its cgroup (for Stats and the OOM watch). Exec ids are per
 * container; an exec id may be reused once the old one is deleted (as in the Go shim).
 */
import type { Any } from '@bufbuild/protobuf/wkt';
import { TaskOOMSchema } from '../../../src/api/gen/containerd/events/task_pb.ts';
import type { CgroupLocation } from '../cgroups/location.ts';
import { cgroupOfPid } from '../cgroups/location.ts';
import type { OomWatch } from '../cgroups/oom-watch.ts';
import { watchOom } from '../cgroups/oom-watch.ts';
import type { EventPublisher } from '../events/publisher.ts';
import type { Logger } from '../log.ts';
import type { ExecProcess } from '../process/exec-process.ts';
import type { InitProcess } from '../process/init-process.ts';
import type { OciRuntime } from '../runtime/oci-runtime.ts';

export class Container {
  readonly init: InitProcess;
  readonly runtime: OciRuntime;
  readonly execs = new Map<string, ExecProcess>();
  readonly #events: EventPublisher;
  readonly #log: Logger;
  #cgroup: CgroupLocation | undefined;
  #oom: OomWatch | undefined;

  constructor(init: InitProcess, runtime: OciRuntime, events: EventPublisher, log: Logger) {
    this.init = init;
    this.runtime = runtime;
    this.#events = events;
    this.#log = log;
    init.orderAfter(() => [...this.execs.values()].filter((e) => e.running).map((e) => e.exited));
    // The last look before the init's TaskExit, then no more: runc delete removes the cgroup,
    // which a v1 eventfd would report as one more event.
    init.setBeforeExit(() => {
      this.#oom?.check();
      this.#oom?.close();
      this.#oom = undefined;
    });
  }

  get id(): string {
    return this.init.id;
  }

  get bundle(): string {
    return this.init.spec.bundle;
  }

  addExec(exec: ExecProcess): void {
    exec.setBeforeExit(() => this.#oom?.check());
    this.execs.set(exec.id, exec);
  }

  /** The cgroup, found from the init pid the first time it is needed while the init lives. */
  cgroup(): CgroupLocation | undefined {
    if (this.#cgroup === undefined && this.init.pid !== undefined && this.init.exit === undefined) {
      try {
        this.#cgroup = cgroupOfPid(this.init.pid);
      } catch (err) {
        this.#log.warn({ container: this.id, err }, 'cannot find the container cgroup');
      }
    }
    return this.#cgroup;
  }

  /**
   * TaskOOM on OOM kills. Called at Create (earlier than the Go shim, which starts at Start and
   * so can miss a kill right after it); the init's pid is in the container cgroup by then.
   */
  watchOom(): void {
    if (this.#oom !== undefined) return;
    const where = this.cgroup();
    if (where === undefined) return;
    try {
      this.#oom = watchOom(where, () => {
        this.#log.info({ container: this.id }, 'OOM kill in the container cgroup');
        this.#events.publish(TaskOOMSchema, { containerId: this.id });
      });
    } catch (err) {
      this.#log.warn({ container: this.id, err }, 'cannot watch for OOM kills');
    }
  }

  async stats(): Promise<Any> {
    const where = this.cgroup();
    if (where === undefined) throw new Error(`no cgroup known for container ${this.id} (not started, or exited before its cgroup was read)`);
    // The cgroup readers and the v1/v2 metrics schemas load on the first Stats, not while the
    // daemon gets ready for its first Create (≈ 3 ms; docs/shim-grouping.md, "Latency").
    const { cgroupStats } = await import('../cgroups/stats.ts');
    return cgroupStats(where);
  }

  close(): void {
    this.#oom?.close();
    this.#oom = undefined;
  }
}
