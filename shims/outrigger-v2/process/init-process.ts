/**
 * A container's init process: `runtime create` (pid file) → `runtime start` → reaped exit →
 * `runtime delete`. Its exit is watched from the moment its pid is known, so it cannot be lost;
 * it is recorded and published only after TaskStart went out (Start holds `#starting` until
 * then) and after every running exec's exit, so containerd sees create → start → exec exits →
 * exit → delete, as the 1.7+ runc shim guarantees.
 *
 * Also here: pause/resume (TaskPaused/TaskResumed after the runtime succeeded), checkpoint,
 * and restore: a Create with a checkpoint runs nothing (no pid, as the Go shim), and Start
 * runs `runtime restore --detach` in place of `runtime start`. With a terminal, the runtime's
 * create/restore gets a console socket and the pty master goes to the ConsoleIo.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExitSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
} from '../../../src/api/gen/containerd/events/task_pb.ts';
import type { Mount } from '../../../src/api/gen/containerd/types/mount_pb.ts';
import { goZeroTimestamp, timestampNow } from '../../../src/api/timestamp.ts';
import { isConsoleIo } from '../../../src/stdio/console-io.ts';
import type { ProcessIo, StdioRequest } from '../../../src/stdio/process-io.ts';
import type { ProcessEnd } from '../../../src/sys/wait.ts';
import { readPidFile } from '../runtime/oci-runtime.ts';
import type { CheckpointArgs } from '../runtime/oci-runtime.ts';
import type { ProcessDeps } from './deps.ts';
import { ExitLatch } from './exit-latch.ts';
import { settleOutputAfterExit, warnUnreadOutput } from './unread-output.ts';
import { assertCan, exitStatusOf, initialState, LifecycleError, transition } from './lifecycle.ts';
import type { ExitInfo, ProcessState } from './lifecycle.ts';

export interface InitSpec {
  readonly id: string;
  readonly bundle: string;
  readonly rootfs: readonly Mount[];
  readonly stdio: StdioRequest;
  /** The container shares the host's (or a parent's) pid namespace: kill the rest when init exits. */
  readonly killAllOnExit: boolean;
  /** Create from this checkpoint image: Start restores it instead of starting a created container. */
  readonly restore?: { readonly imagePath: string; readonly workPath: string };
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
  #beforeExit: () => void = () => undefined;

  private constructor(spec: InitSpec, deps: ProcessDeps, io: ProcessIo, pid: number | undefined) {
    this.spec = spec;
    this.#deps = deps;
    this.#io = io;
    this.#state = initialState(pid);
  }

  /** Runs `runtime create` with the process's stdio; the caller owns `io` until this resolves. */
  static async create(spec: InitSpec, deps: ProcessDeps, io: ProcessIo): Promise<InitProcess> {
    const taskCreate = (pid: number) =>
      deps.events.publish(TaskCreateSchema, {
        containerId: spec.id,
        bundle: spec.bundle,
        rootfs: [...spec.rootfs],
        io: { stdin: spec.stdio.stdin, stdout: spec.stdio.stdout, stderr: spec.stdio.stderr, terminal: spec.stdio.terminal },
        checkpoint: spec.restore?.imagePath ?? '',
        pid,
      });
    if (spec.restore) {
      // As the Go shim: nothing runs until Start, which restores; no pid until then.
      taskCreate(0);
      return new InitProcess(spec, deps, io, undefined);
    }
    const pidFile = path.join(spec.bundle, 'init.pid');
    const create = (consoleSocket?: string) => deps.runtime.create(spec.id, pidFile, io.fds, consoleSocket);
    await (isConsoleIo(io) ? io.attach(create) : create());
    io.afterStart();
    const pid = readPidFile(pidFile);
    const init = new InitProcess(spec, deps, io, pid);
    init.#watch(pid);
    taskCreate(pid);
    return init;
  }

  /** Watch from now on: the pid is our child (or zombie) from here, nothing can reap it but us. */
  #watch(pid: number): void {
    this.#deps.reaper
      .track(pid)
      .then((e) => this.#onEnd(e))
      .catch((err: unknown) => this.#deps.log.error({ container: this.id, err }, 'recording the init exit failed'));
  }

  /** `runtime restore --detach` of the checkpoint named at Create; the restored init's pid. */
  async #restore(restore: NonNullable<InitSpec['restore']>): Promise<number> {
    const pidFile = path.join(this.spec.bundle, 'init.pid');
    const run = (consoleSocket?: string) =>
      this.#deps.runtime.restore(this.id, { imagePath: restore.imagePath, workPath: restore.workPath, pidFile, ...(consoleSocket !== undefined ? { consoleSocket } : {}) }, this.#io.fds);
    await (isConsoleIo(this.#io) ? this.#io.attach(run) : run());
    this.#io.afterStart();
    const pid = readPidFile(pidFile);
    this.#watch(pid);
    return pid;
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

  /** Runs just before the exit is published (the container's OOM check, so TaskOOM comes first). */
  setBeforeExit(hook: () => void): void {
    this.#beforeExit = hook;
  }

  /** ResizePty: a no-op without a terminal, as in the Go shim. */
  resizePty(width: number, height: number): void {
    if (isConsoleIo(this.#io)) this.#io.resize({ width, height });
  }

  /** Freezes the container (`runtime pause`), then TaskPaused. */
  async pause(): Promise<void> {
    assertCan(this.#state, 'pause');
    await this.#deps.runtime.pause(this.id);
    this.#state = transition(this.#state, { kind: 'pause' });
    this.#deps.events.publish(TaskPausedSchema, { containerId: this.id });
  }

  async resume(): Promise<void> {
    assertCan(this.#state, 'resume');
    await this.#deps.runtime.resume(this.id);
    this.#state = transition(this.#state, { kind: 'resume' });
    this.#deps.events.publish(TaskResumedSchema, { containerId: this.id });
  }

  /** `runtime checkpoint` of a running or paused container (the Go shim refuses other states). */
  async checkpoint(args: CheckpointArgs): Promise<void> {
    const kind = this.#state.kind;
    if (kind === 'created') throw new LifecycleError(kind, 'pause', 'cannot checkpoint a task in created state');
    if (kind === 'stopped' || kind === 'deleted') throw new LifecycleError(kind, 'pause', 'cannot checkpoint a stopped container');
    // As the Go shim: a work dir of our own unless asked to keep one; CRIU's dump log is kept
    // in the bundle when the dump fails, and the error says where.
    const work = args.workPath !== '' ? args.workPath : path.join(this.spec.bundle, 'criu-work');
    try {
      await this.#deps.runtime.checkpoint(this.id, { ...args, workPath: work, terminal: args.terminal || this.spec.stdio.terminal });
    } catch (err) {
      const dumpLog = path.join(this.spec.bundle, 'criu-dump.log');
      try {
        fs.copyFileSync(path.join(work, 'dump.log'), dumpLog);
      } catch {
        throw err;
      }
      if (err instanceof Error) err.message = `${err.message} (CRIU log: ${dumpLog})`;
      throw err;
    } finally {
      if (args.workPath === '') fs.rmSync(work, { recursive: true, force: true });
    }
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
      const pid = this.spec.restore ? await this.#restore(this.spec.restore) : (await this.#deps.runtime.start(this.id), this.#state.pid!);
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
    if (this.#state.kind === 'paused') {
      // Died while frozen (SIGKILL, OOM): thaw the cgroup so nothing else in it stays stuck.
      await this.#deps.runtime.resume(this.id).catch((err: unknown) => this.#deps.log.debug({ container: this.id, err }, 'resume after exit while paused'));
    }
    await settleOutputAfterExit(this.#io);
    if (this.#deleted()) return;
    const exit: ExitInfo = { status: exitStatusOf(end), exitedAt };
    this.#state = transition(this.#state, { kind: 'exit', exit });
    try {
      this.#beforeExit();
    } catch (err) {
      this.#deps.log.warn({ container: this.id, err }, 'before-exit check failed');
    }
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
    warnUnreadOutput(this.#io, this.#deps.log, { container: this.id });
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
