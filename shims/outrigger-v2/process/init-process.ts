/**
 * A container's init process: `runtime create` (pid file) → `runtime start` → reaped exit →
 * `runtime delete`. Its exit is watched from the moment its pid is known, so it cannot be lost;
 * it is recorded and published only after TaskStart went out (Start holds `#starting` until
 * then) and after every running exec's exit, so containerd sees create → start → exec exits →
 * exit → delete, as the 1.7+ runc shim guarantees.
 */
import path from 'node:path';
import { TaskCreateSchema, TaskDeleteSchema, TaskExitSchema, TaskStartSchema } from '../../../src/api/gen/containerd/events/task_pb.ts';
import type { Mount } from '../../../src/api/gen/containerd/types/mount_pb.ts';
import { goZeroTimestamp, timestampNow } from '../../../src/api/timestamp.ts';
import type { ProcessIo, StdioRequest } from '../../../src/stdio/process-io.ts';
import type { ProcessEnd } from '../../../src/sys/wait.ts';
import { readPidFile } from '../runtime/oci-runtime.ts';
import type { ProcessDeps } from './deps.ts';
import { ExitLatch } from './exit-latch.ts';
import { assertCan, exitStatusOf, initialState, transition } from './lifecycle.ts';
import type { ExitInfo, ProcessState } from './lifecycle.ts';

export interface InitSpec {
  readonly id: string;
  readonly bundle: string;
  readonly rootfs: readonly Mount[];
  readonly stdio: StdioRequest;
  /** The container shares the host's (or a parent's) pid namespace: kill the rest when init exits. */
  readonly killAllOnExit: boolean;
}

export class InitProcess {
  readonly spec: InitSpec;
  readonly #deps: ProcessDeps;
  readonly #io: ProcessIo;
  readonly #latch = new ExitLatch();
  #state: ProcessState;
  #starting: Promise<void> | undefined;
  /** Running execs' recorded exits that must precede ours. */
  #execExits: () => Promise<unknown>[] = () => [];

  private constructor(spec: InitSpec, deps: ProcessDeps, io: ProcessIo, pid: number) {
    this.spec = spec;
    this.#deps = deps;
    this.#io = io;
    this.#state = initialState(pid);
  }

  /** Runs `runtime create` with the process's stdio; the caller owns `io` until this resolves. */
  static async create(spec: InitSpec, deps: ProcessDeps, io: ProcessIo): Promise<InitProcess> {
    const pidFile = path.join(spec.bundle, 'init.pid');
    await deps.runtime.create(spec.id, pidFile, io.fds);
    io.afterStart();
    const pid = readPidFile(pidFile);
    const init = new InitProcess(spec, deps, io, pid);
    // Watch from now on: the pid is our child (or zombie) from here, nothing can reap it but us.
    const end = deps.reaper.track(pid);
    end
      .then((e) => init.#onEnd(e))
      .catch((err: unknown) => deps.log.error({ container: spec.id, err }, 'recording the init exit failed'));
    deps.events.publish(TaskCreateSchema, {
      containerId: spec.id,
      bundle: spec.bundle,
      rootfs: [...spec.rootfs],
      io: { stdin: spec.stdio.stdin, stdout: spec.stdio.stdout, stderr: spec.stdio.stderr, terminal: spec.stdio.terminal },
      pid,
    });
    return init;
  }

  get id(): string {
    return this.spec.id;
  }

  get state(): ProcessState {
    return this.#state;
  }

  get pid(): number | undefined {
    return this.#state.pid;
  }

  get io(): ProcessIo {
    return this.#io;
  }

  /** Resolves once the exit is recorded (and published). */
  get exited(): Promise<ExitInfo> {
    return this.#latch.promise;
  }

  get exit(): ExitInfo | undefined {
    return this.#latch.value;
  }

  /** Lets the container tell us which exec exits must be recorded before ours. */
  orderAfter(execExits: () => Promise<unknown>[]): void {
    this.#execExits = execExits;
  }

  async start(): Promise<number> {
    assertCan(this.#state, 'start');
    if (this.#starting) throw new Error('start already in progress');
    let release!: () => void;
    this.#starting = new Promise((resolve) => (release = resolve));
    try {
      await this.#deps.runtime.start(this.id);
      const pid = this.#state.pid!;
      this.#state = transition(this.#state, { kind: 'start', pid });
      this.#deps.events.publish(TaskStartSchema, { containerId: this.id, pid });
      return pid;
    } finally {
      this.#starting = undefined;
      release();
    }
  }

  /** A method, not a narrowed field read: the state changes across the awaits in #onEnd. */
  #deleted(): boolean {
    return this.#state.kind === 'deleted';
  }

  async #onEnd(end: ProcessEnd): Promise<void> {
    const exitedAt = timestampNow();
    if (this.#starting) await this.#starting;
    // A never-started init dies by `delete --force`; that end is nobody's business.
    if (this.#deleted()) return;
    if (this.spec.killAllOnExit) {
      // No pid namespace of its own: its other processes (execs included) outlive it unless killed.
      await this.#deps.runtime.kill(this.id, 9, true).catch((err: unknown) => this.#deps.log.debug({ container: this.id, err }, 'kill --all after init exit'));
    }
    // Exec exits first: the init's TaskExit is the container's last (the 1.7+ runc shim's rule).
    await Promise.allSettled(this.#execExits());
    if (this.#deleted()) return; // a never-started init deleted while we waited
    const exit: ExitInfo = { status: exitStatusOf(end), exitedAt };
    this.#state = transition(this.#state, { kind: 'exit', exit });
    this.#io.processExited();
    this.#deps.events.publish(TaskExitSchema, { containerId: this.id, id: this.id, pid: this.#state.pid ?? 0, exitStatus: exit.status, exitedAt: exit.exitedAt });
    this.#latch.set(exit);
  }

  async kill(signal: number, all: boolean): Promise<void> {
    if (this.#state.kind === 'stopped' || this.#state.kind === 'deleted') throw new ProcessFinishedError();
    try {
      await this.#deps.runtime.kill(this.id, signal, all);
    } catch (err) {
      // The runtime says "not running"/"does not exist" when the exit beat us to it.
      if (this.#latch.value !== undefined || /not running|does not exist|no such process/i.test(String(err))) throw new ProcessFinishedError();
      throw err;
    }
  }

  /** Deletes a stopped (or never started) init: runtime state, io; the caller unmounts and forgets it. */
  async delete(): Promise<{ pid: number; exit: ExitInfo }> {
    assertCan(this.#state, 'delete');
    if (this.#starting) throw new Error('cannot delete a process that is starting');
    const neverStarted = this.#state.kind === 'created';
    await this.#deps.runtime.delete(this.id, neverStarted).catch((err: unknown) => {
      if (!/does not exist|not found/i.test(String(err))) throw err;
    });
    // A created init dies with `delete --force`; its (unpublished-start) end is of no interest.
    const exit: ExitInfo = this.#latch.value ?? { status: 0, exitedAt: goZeroTimestamp() };
    this.#state = transition(this.#state, { kind: 'delete' });
    // Waiters on a never-started init learn its end here; nothing else will tell them.
    if (this.#latch.value === undefined) this.#latch.set(exit);
    this.#io.close();
    const pid = this.#state.pid ?? 0;
    this.#deps.events.publish(TaskDeleteSchema, { containerId: this.id, pid, exitStatus: exit.status, exitedAt: exit.exitedAt });
    return { pid, exit };
  }
}

export class ProcessFinishedError extends Error {
  constructor() {
    super('process already finished');
    this.name = 'ProcessFinishedError';
  }
}
