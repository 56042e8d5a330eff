/**
 * The Task API (containerd.task.v2.Task and v3) over the containers this shim holds. Every RPC
 * dispatches on the request's `id` (one shim serves a whole CRI sandbox group), and every
 * error names the operation and the container. The work is done by the process objects
 * (process/), the runtime CLI (runtime/) and the cgroup readers (cgroups/); this file maps
 * requests onto them and their errors onto the codes containerd expects.
 */
import fs from 'node:fs';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { CheckpointOptionsSchema, ProcessDetailsSchema } from '../../../src/api/gen/containerd/runc/v1/oci_pb.ts';
import { ProcessInfoSchema } from '../../../src/api/gen/containerd/types/task/task_pb.ts';
import type { Status } from '../../../src/api/gen/containerd/types/task/task_pb.ts';
import type { TaskServiceImpl } from '../../../src/api/task-service.ts';
import { exitedAtTimestamp } from '../../../src/api/timestamp.ts';
import { anyIs, OCI_LINUX_RESOURCES_TYPE_URL, packAny, unpackAny } from '../../../src/api/typeurl.ts';
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
import { CriuMissingError, findCriu } from '../runtime/criu.ts';
import { OciRuntime, OciRuntimeError } from '../runtime/oci-runtime.ts';
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
  /**
   * Called on every Shutdown with the task it names (containerd is done with that task, and it
   * may serve others); the shim then decides whether it may leave (../shim-lifetime.ts).
   */
  readonly onShutdown: (id: string) => void;
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
  if (err instanceof CriuMissingError) return failedPrecondition(`${where}: ${err.message}`);
  // Go's shape, unprefixed: "OCI runtime create failed: <runtime's own message>" (see oci-runtime.ts).
  if (err instanceof OciRuntimeError) return new TtrpcError(Code.Unknown, err.message);
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
        this.#creating.add(req.id);
        try {
          const options = runtimeOptionsFromAny(req.options as Any | undefined);
          if (req.checkpoint !== '') findCriu(options);
          writeOptions(req.bundle, options);
          const runtime = new OciRuntime(options, this.#deps.namespace, req.bundle);
          const rootfs = req.rootfs.map((m) => ({ type: m.type, source: m.source, target: m.target, options: [...m.options] }));
          if (rootfs.length > 0) await mountRootfs(req.id, req.bundle, rootfs);
          let io;
          try {
            io = await openProcessIo(
              { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
              { uid: options.ioUid, gid: options.ioGid },
              { containerId: req.id, namespace: this.#deps.namespace, bundle: req.bundle, log: this.#deps.log },
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
                ...(req.checkpoint !== '' ? { restore: { imagePath: req.checkpoint, workPath: options.criuWorkPath ?? '' } } : {}),
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
          const container = new Container(init, runtime, this.#deps.events, this.#deps.log);
          container.cgroup(); // while the init is alive, for Stats at any later point
          // Watch from Create, not Start as the Go shim does: the cgroup exists and nothing runs yet,
          // so an OOM kill in the first milliseconds after Start is not missed.
          container.watchOom();
          this.containers.set(req.id, container);
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
        if (p instanceof InitProcess) c.watchOom(); // no-op when Create's watch is in place
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
        if (!req.spec || req.spec.value.length === 0) throw invalidArgument(`exec ${req.id}/${req.execId}: no process spec`);
        const state = c.init.state.kind;
        if (state === 'paused') throw failedPrecondition(`exec ${req.id}/${req.execId}: cannot exec in a paused state`);
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
        c.addExec(exec);
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
        c.close();
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

      pause: this.#rpc('pause', async (req) => {
        await this.#container(req.id).init.pause();
        return {};
      }),

      resume: this.#rpc('resume', async (req) => {
        await this.#container(req.id).init.resume();
        return {};
      }),

      update: this.#rpc('update', async (req) => {
        const c = this.#container(req.id);
        const resources = req.resources;
        if (!resources || resources.value.length === 0) throw invalidArgument(`update ${req.id}: no resources`);
        if (resources.typeUrl !== OCI_LINUX_RESOURCES_TYPE_URL) throw invalidArgument(`update ${req.id}: resources of type ${resources.typeUrl}, want ${OCI_LINUX_RESOURCES_TYPE_URL}`);
        let json: string;
        try {
          json = new TextDecoder('utf-8', { fatal: true }).decode(resources.value);
          const parsed: unknown = JSON.parse(json);
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
        } catch (err) {
          throw invalidArgument(`update ${req.id}: resources are not a LinuxResources JSON object: ${String(err)}`);
        }
        await c.runtime.update(req.id, json);
        return {};
      }),

      stats: this.#rpc('stats', async (req) => {
        return { stats: await this.#container(req.id).stats() };
      }),

      resizePty: this.#rpc('resizePty', (req) => {
        const c = this.#container(req.id);
        this.#process(c, req.execId).resizePty(req.width, req.height);
        return {};
      }),

      checkpoint: this.#rpc('checkpoint', async (req) => {
        const c = this.#container(req.id);
        let opts = create(CheckpointOptionsSchema);
        if (req.options && req.options.typeUrl !== '') {
          if (!anyIs(req.options, CheckpointOptionsSchema)) throw invalidArgument(`checkpoint ${req.id}: options of type ${req.options.typeUrl}, want containerd.runc.v1.CheckpointOptions`);
          opts = unpackAny(req.options, CheckpointOptionsSchema);
        }
        const imagePath = req.path !== '' ? req.path : opts.imagePath;
        if (imagePath === '') throw invalidArgument(`checkpoint ${req.id}: no image path`);
        findCriu(c.runtime.options);
        await c.init.checkpoint({
          imagePath,
          workPath: opts.workPath,
          exit: opts.exit,
          openTcp: opts.openTcp,
          externalUnixSockets: opts.externalUnixSockets,
          terminal: opts.terminal,
          fileLocks: opts.fileLocks,
          emptyNamespaces: [...opts.emptyNamespaces],
          cgroupsMode: opts.cgroupsMode,
        });
        return {};
      }),

      connect: this.#rpc('connect', (req) => {
        const c = this.containers.get(req.id);
        return { shimPid: process.pid, taskPid: c?.init.pid ?? 0, version: '' };
      }),

      shutdown: this.#rpc('shutdown', (req) => {
        this.#deps.onShutdown(req.id);
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
