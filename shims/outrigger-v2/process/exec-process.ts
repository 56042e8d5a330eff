/**
 * An exec'd process: added (Exec RPC, TaskExecAdded) → `runtime exec --detach --pid-file` on
 * Start → reaped exit → Delete. Its stdio is opened at Start, as the Go shim does. The exit
 * watch is attached only after TaskExecStarted was queued, so its TaskExit cannot overtake it;
 * a process that exits before runc returns stays our zombie until tracked, so no exit is lost.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TaskExecAddedSchema, TaskExecStartedSchema, TaskExitSchema } from '../../../src/api/gen/containerd/events/task_pb.ts';
import { timestampNow } from '../../../src/api/timestamp.ts';
import { isConsoleIo } from '../../../src/stdio/console-io.ts';
import { openProcessIo } from '../../../src/stdio/open-process-io.ts';
import type { ProcessIo, StdioRequest } from '../../../src/stdio/process-io.ts';
import type { ProcessEnd } from '../../../src/sys/wait.ts';
import { readPidFile } from '../runtime/oci-runtime.ts';
import type { ProcessDeps } from './deps.ts';
import { ExitLatch } from './exit-latch.ts';
import { settleOutputAfterExit, warnUnreadOutput } from './unread-output.ts';
import { assertCan, exitStatusOf, initialState, transition } from './lifecycle.ts';
import type { ExitInfo, ProcessState } from './lifecycle.ts';
import { ProcessFinishedError } from './init-process.ts';

export interface ExecSpec {
  readonly containerId: string;
  readonly execId: string;
  readonly bundle: string;
  readonly stdio: StdioRequest;
  /** The OCI runtime-spec Process as JSON, passed to `runtime exec --process`. */
  readonly processJson: string;
}

export class ExecNotCreatedError extends Error {
  constructor() {
    super('process not created');
    this.name = 'ExecNotCreatedError';
  }
}

export class ExecProcess {
  readonly spec: ExecSpec;
  readonly #deps: ProcessDeps;
  readonly #latch = new ExitLatch();
  #state: ProcessState = initialState(undefined);
  #io: ProcessIo | undefined;
  #starting = false;
  #beforeExit: () => void = () => undefined;

  constructor(spec: ExecSpec, deps: ProcessDeps) {
    this.spec = spec;
    this.#deps = deps;
    deps.events.publish(TaskExecAddedSchema, { containerId: spec.containerId, execId: spec.execId });
  }

  get id(): string {
    return this.spec.execId;
  }

  get state(): ProcessState {
    return this.#state;
  }

  get pid(): number | undefined {
    return this.#state.pid;
  }

  get io(): ProcessIo | undefined {
    return this.#io;
  }

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

  /** ResizePty: a no-op without a terminal or before the start, as in the Go shim. */
  resizePty(width: number, height: number): void {
    if (isConsoleIo(this.#io)) this.#io.resize({ width, height });
  }

  /** Started and not yet recorded as exited. */
  get running(): boolean {
    return this.#state.kind === 'running' || this.#starting;
  }

  async start(): Promise<number> {
    assertCan(this.#state, 'start');
    if (this.#starting) throw new Error('start already in progress');
    this.#starting = true;
    const base = path.join(this.spec.bundle, `.exec-${this.spec.execId}`);
    const processFile = `${base}.process.json`;
    const pidFile = `${base}.pid`;
    try {
      fs.writeFileSync(processFile, this.spec.processJson, { mode: 0o600 });
      const { ioUid, ioGid } = this.#deps.runtime.options;
      const io = await openProcessIo(this.spec.stdio, { uid: ioUid, gid: ioGid }, {
        containerId: this.spec.containerId,
        namespace: this.#deps.runtime.namespace,
        bundle: this.spec.bundle,
        execId: this.spec.execId,
        log: this.#deps.log,
      });
      this.#io = io;
      const exec = (consoleSocket?: string) => this.#deps.runtime.exec(this.spec.containerId, processFile, pidFile, io.fds, consoleSocket);
      await (isConsoleIo(io) ? io.attach(exec) : exec());
      io.afterStart();
      const pid = readPidFile(pidFile);
      const end = this.#deps.reaper.track(pid);
      this.#state = transition(this.#state, { kind: 'start', pid });
      this.#deps.events.publish(TaskExecStartedSchema, { containerId: this.spec.containerId, execId: this.spec.execId, pid });
      end
        .then((e) => this.#onEnd(e))
        .catch((err: unknown) => this.#deps.log.error({ container: this.spec.containerId, exec: this.spec.execId, err }, 'recording the exec exit failed'));
      return pid;
    } catch (err) {
      this.#io?.close();
      this.#io = undefined;
      throw err;
    } finally {
      this.#starting = false;
      fs.rmSync(processFile, { force: true });
      fs.rmSync(pidFile, { force: true });
    }
  }

  async #onEnd(end: ProcessEnd): Promise<void> {
    const exitedAt = timestampNow();
    await settleOutputAfterExit(this.#io);
    const exit: ExitInfo = { status: exitStatusOf(end), exitedAt };
    this.#state = transition(this.#state, { kind: 'exit', exit });
    this.#runBeforeExit();
    this.#deps.events.publish(TaskExitSchema, {
      containerId: this.spec.containerId,
      id: this.spec.execId,
      pid: this.#state.pid ?? 0,
      exitStatus: exit.status,
      exitedAt: exit.exitedAt,
    });
    this.#latch.set(exit);
  }

  #runBeforeExit(): void {
    try {
      this.#beforeExit();
    } catch (err) {
      this.#deps.log.warn({ container: this.spec.containerId, exec: this.spec.execId, err }, 'before-exit check failed');
    }
  }

  kill(signal: number): void {
    if (this.#state.kind === 'created') throw new ExecNotCreatedError();
    if (this.#state.kind !== 'running') throw new ProcessFinishedError();
    try {
      process.kill(this.#state.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') throw new ProcessFinishedError();
      throw err;
    }
  }

  delete(): { pid: number; exit: ExitInfo | undefined } {
    if (this.#starting) throw new Error('cannot delete a process that is starting');
    this.#state = transition(this.#state, { kind: 'delete' });
    if (this.#io) warnUnreadOutput(this.#io, this.#deps.log, { container: this.spec.containerId, exec: this.spec.execId });
    this.#io?.close();
    return { pid: this.#state.pid ?? 0, exit: this.#latch.value };
  }
}
