/**
 * One container inside the shim: its init process, its execs by id, and the OCI runtime
 * settings it was created with. Exec ids are per container; an exec id may be reused once the
 * old one is deleted (as in the Go shim).
 */
import type { ExecProcess } from '../process/exec-process.ts';
import type { InitProcess } from '../process/init-process.ts';
import type { OciRuntime } from '../runtime/oci-runtime.ts';

export class Container {
  readonly init: InitProcess;
  readonly runtime: OciRuntime;
  readonly execs = new Map<string, ExecProcess>();

  constructor(init: InitProcess, runtime: OciRuntime) {
    this.init = init;
    this.runtime = runtime;
    init.orderAfter(() => [...this.execs.values()].filter((e) => e.running).map((e) => e.exited));
  }

  get id(): string {
    return this.init.id;
  }

  get bundle(): string {
    return this.init.spec.bundle;
  }
}
