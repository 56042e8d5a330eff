/**
 * The Task API (containerd.task.v2.Task and v3) over the containers this shim holds. Every RPC
 * dispatches on the request's `id` (one shim serves a whole CRI sandbox group), and every
 * error names the operation and the container. RPCs of part 2 (Pause/Resume, Stats, Update,
 * ResizePty, Checkpoint) are left out and so answer Unimplemented.
 */
import fs from 'node:fs';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { ProcessDetailsSchema } from '../../../src/api/gen/containerd/runc/v1/oci_pb.ts';
import { ProcessInfoSchema } from '../../../src/api/gen/containerd/types/task/task_pb.ts';
import type { Status } from '../../../src/api/gen/containerd/types/task/task_pb.ts';
import type { TaskServiceImpl } from '../../../src/api/task-service.ts';
import { exitedAtTimestamp } from '../../../src/api/timestamp.ts';
import { packAny } from '../../../src/api/typeurl.ts';
import { openProcessIo } from '../../../src/stdio/open-process-io.ts';
import { StdioError } from '../../../src/stdio/process-io.ts';
import type { ChildReaper } from '../../../src/sys/child-reaper.ts';
import { Code, TtrpcError, alreadyExists, failedPrecondition, invalidArgument, notFound } from '../../../src/ttrpc/status.ts';
import type { EventPublisher } from '../events/publisher.ts';
import type { Logger } from '../log.ts';
import type { ProcessDeps } from '../process/deps.ts';
import { ExecNotCreatedError, ExecProcess } from '../process/exec-process.ts';
import { InitProcess, ProcessFinishedError } from '../process/init-process.ts';
import { LifecycleError, statusOf } from '../process/lifecycle.ts';
import { OciRuntime } from '../runtime/oci-runtime.ts';
import { OPTIONS_FILE, runtimeOptionsFromAny } from '../runtime/options.ts';
import type { RuntimeOptions } from '../runtime/options.ts';
import { mountRootfs, unmountRootfs } from '../runtime/rootfs.ts';
import { Container } from './container.ts';
import { shouldKillAllOnExit } from './spec-facts.ts';

export interface TaskServiceDeps {
  readonly namespace: string;
  readonly reaper: ChildReaper;
  readonly events: EventPublisher;
  readonly log: Logger;
  /** Called after Shutdown was accepted with no container left. */
  readonly onShutdown: () => void;
}

type Impl = Partial<TaskServiceImpl>;

/** Turns internal errors into the codes and wording containerd expects, prefixed with the operation. */
function rpcError(op: string, id: string, err: unknown): TtrpcError {
  const where = `${op} ${id}`;
  if (err instanceof TtrpcError) {
    // Keep code and Go's `…: not found` tail (containerd strips it); put the operation in front.
    return err.message.startsWith(where) ? err : new TtrpcError(err.code, `${where}: ${err.message}`, err.details);
  }
  if (err instanceof ProcessFinishedError) return notFound(`${where}: process already finished`);
  if (err instanceof ExecNotCreatedError) return failedPrecondition(`${where}: process not created`);
  if (err instanceof LifecycleError) return new TtrpcError(Code.Unknown, `${where}: ${err.message}`);
  if (err instanceof StdioError) return new TtrpcError(Code.Unknown, `${where}: ${err.message}`);
  const message = err instanceof Error ? err.message : String(err);
  return new TtrpcError(Code.Unknown, message.startsWith(where) ? message : `${where}: ${message}`);
}

export class TaskService {
  readonly #deps: TaskServiceDeps;
  readonly containers = new Map<string, Container>();
  /** Ids whose Create is in flight, so a second Create cannot race it. */
  readonly #creating = new Set<string>();

  constructor(deps: TaskServiceDeps) {
    this.#deps = deps;
  }

  #container(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw notFound('container not created');
    return c;
  }

  #process(c: Container, execId: string): InitProcess | ExecProcess {
    if (execId === '') return c.init;
    const e = c.execs.get(execId);
    if (!e) throw notFound(`process does not exist ${execId}`);
    return e;
  }

  #processDeps(runtime: OciRuntime): ProcessDeps {
    return { runtime, reaper: this.#deps.reaper, events: this.#deps.events, log: this.#deps.log };
  }

  /** Wraps a handler so failures carry operation and id and are logged once. */
  #rpc<Req extends { id: string; execId?: string }, Res>(op: string, fn: (req: Req) => Promise<Res> | Res): (req: Req) => Promise<Res> {
    return async (req: Req) => {
      try {
        return await fn(req);
      } catch (err) {
        const target = req.execId ? `${req.id}/${req.execId}` : req.id;
        const out = rpcError(op, target, err);
        const level = out.code === Code.NotFound ? 'debug' : 'warn';
        this.#deps.log[level]({ op, container: req.id, exec: req.execId || undefined, code: out.code, err: out.message }, `${op} failed`);
        throw out;
      }
    };
  }

  impl(): Impl {
    return {
      create: this.#rpc('create', async (req) => {
        if (req.id === '') throw invalidArgument('create: container id is empty');
        if (this.containers.has(req.id) || this.#creating.has(req.id)) throw alreadyExists(`container ${req.id}`);
        if (req.checkpoint !== '') throw new TtrpcError(Code.Unimplemented, `create ${req.id}: restore from checkpoint is not supported`);
        this.#creating.add(req.id);
        try {
          const options = runtimeOptionsFromAny(req.options as Any | undefined);
          writeOptions(req.bundle, options);
          const runtime = new OciRuntime(options, this.#deps.namespace, req.bundle);
          const rootfs = req.rootfs.map((m) => ({ type: m.type, source: m.source, target: m.target, options: [...m.options] }));
          if (rootfs.length > 0) await mountRootfs(req.id, req.bundle, rootfs);
          let io;
          try {
            io = openProcessIo(
              { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
              { uid: options.ioUid, gid: options.ioGid },
            );
          } catch (err) {
            if (rootfs.length > 0) await unmountRootfs(req.bundle).catch(() => undefined);
            throw err;
          }
          let init: InitProcess;
          try {
            init = await InitProcess.create(
              {
                id: req.id,
                bundle: req.bundle,
                rootfs: req.rootfs,
                stdio: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
                killAllOnExit: shouldKillAllOnExit(req.bundle),
              },
              this.#processDeps(runtime),
              io,
            );
          } catch (err) {
            io.close();
            await runtime.delete(req.id, true).catch(() => undefined);
            if (rootfs.length > 0) await unmountRootfs(req.bundle).catch(() => undefined);
            throw err;
          }
          this.containers.set(req.id, new Container(init, runtime));
          this.#deps.log.info({ container: req.id, initPid: init.pid, ociRuntime: options.binaryName }, 'created');
          return { pid: init.pid ?? 0 };
        } finally {
          this.#creating.delete(req.id);
        }
      }),

      start: this.#rpc('start', async (req) => {
        const c = this.#container(req.id);
        const p = this.#process(c, req.execId);
        if (p instanceof ExecProcess && c.init.state.kind !== 'running') {
          throw failedPrecondition(`start ${req.id}/${req.execId}: container ${req.id} init process is not running`);
        }
        const pid = await p.start();
        return { pid };
      }),

      state: this.#rpc('state', (req) => {
        const c = this.#container(req.id);
        const p = this.#process(c, req.execId);
        const stdio = p instanceof InitProcess ? p.spec.stdio : p.spec.stdio;
        return {
          id: req.execId === '' ? req.id : req.execId,
          bundle: c.bundle,
          pid: p.pid ?? 0,
          status: statusOf(p.state) as Status,
          stdin: stdio.stdin,
          stdout: stdio.stdout,
          stderr: stdio.stderr,
          terminal: stdio.terminal,
          exitStatus: p.exit?.status ?? 0,
          exitedAt: exitedAtTimestamp(p.exit?.exitedAt),
          execId: req.execId,
        };
      }),

      wait: this.#rpc('wait', async (req) => {
        const c = this.#container(req.id);
        const p = this.#process(c, req.execId);
        const exit = await p.exited;
        return { exitStatus: exit.status, exitedAt: exit.exitedAt };
      }),

      kill: this.#rpc('kill', async (req) => {
        const c = this.#container(req.id);
        const p = this.#process(c, req.execId);
        if (p instanceof InitProcess) await p.kill(req.signal, req.all);
        else p.kill(req.signal);
        return {};
      }),

      exec: this.#rpc('exec', (req) => {
        const c = this.#container(req.id);
        if (req.execId === '') throw invalidArgument(`exec ${req.id}: exec id is empty`);
        if (c.execs.has(req.execId)) throw alreadyExists(`id ${req.execId}`);
        if (req.terminal) throw new TtrpcError(Code.Unimplemented, `exec ${req.id}/${req.execId}: terminal exec is not supported by this build yet`);
        if (!req.spec || req.spec.value.length === 0) throw invalidArgument(`exec ${req.id}/${req.execId}: no process spec`);
        const state = c.init.state.kind;
        if (state !== 'running' && state !== 'created') throw failedPrecondition(`exec ${req.id}/${req.execId}: cannot exec in a stopped state`);
        let processJson: string;
        try {
          processJson = new TextDecoder('utf-8', { fatal: true }).decode(req.spec.value);
          JSON.parse(processJson);
        } catch (err) {
          throw invalidArgument(`exec ${req.id}/${req.execId}: process spec is not JSON: ${String(err)}`);
        }
        const exec = new ExecProcess(
          {
            containerId: req.id,
            execId: req.execId,
            bundle: c.bundle,
            stdio: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
            processJson,
          },
          this.#processDeps(c.runtime),
        );
        c.execs.set(req.execId, exec);
        return {};
      }),

      delete: this.#rpc('delete', async (req) => {
        const c = this.#container(req.id);
        const p = this.#process(c, req.execId);
        if (p instanceof ExecProcess) {
          const { pid, exit } = p.delete();
          c.execs.delete(req.execId);
          return { pid, exitStatus: exit?.status ?? 0, exitedAt: exitedAtTimestamp(exit?.exitedAt) };
        }
        const { pid, exit } = await p.delete();
        for (const e of c.execs.values()) e.io?.close();
        this.containers.delete(req.id);
        await unmountRootfs(c.bundle).catch((err: unknown) => this.#deps.log.warn({ container: req.id, err }, 'unmount rootfs'));
        this.#deps.log.info({ container: req.id, exitStatus: exit.status }, 'deleted');
        return { pid, exitStatus: exit.status, exitedAt: exit.exitedAt };
      }),

      pids: this.#rpc('pids', async (req) => {
        const c = this.#container(req.id);
        const pids = await c.runtime.ps(req.id);
        const execByPid = new Map<number, string>();
        for (const e of c.execs.values()) if (e.pid !== undefined) execByPid.set(e.pid, e.id);
        return {
          processes: pids.map((pid) => {
            const execId = execByPid.get(pid);
            return create(ProcessInfoSchema, {
              pid,
              ...(execId !== undefined ? { info: packAny(ProcessDetailsSchema, { execId }) } : {}),
            });
          }),
        };
      }),

      closeIO: this.#rpc('closeIO', (req) => {
        const c = this.#container(req.id);
        const p = this.#process(c, req.execId);
        if (req.stdin) p.io?.closeStdin();
        return {};
      }),

      connect: this.#rpc('connect', (req) => {
        const c = this.containers.get(req.id);
        return { shimPid: process.pid, taskPid: c?.init.pid ?? 0, version: '' };
      }),

      shutdown: this.#rpc('shutdown', (_req) => {
        if (this.containers.size === 0 && this.#creating.size === 0) this.#deps.onShutdown();
        return {};
      }),
    };
  }
}

function writeOptions(bundle: string, options: RuntimeOptions): void {
  const file = path.join(bundle, OPTIONS_FILE);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(options), { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}
