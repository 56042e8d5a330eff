/**
 * The shim daemon once its socket listens (./daemon.ts): the log on the bundle's FIFO, the
 * child reaper, events to $TTRPC_ADDRESS, the Task service (both service names) and the Group
 * service that `start` joins through (./bootstrap/group-join.ts), all on the listening socket.
 * One daemon may serve many tasks (a CRI sandbox, or a whole namespace with ShimGrouping =
 * "node"): ./shim-lifetime.ts decides when it may leave, the log follows the live tasks' FIFOs,
 * and an idle trim gives back memory after bursts (./daemon-memory.ts). It ends when the last
 * task is gone (Shutdown), or on SIGTERM/SIGINT.
 */
import type net from 'node:net';
import { registerTaskService } from '../../src/api/task-service.ts';
import type { TaskServiceImpl } from '../../src/api/task-service.ts';
import { ChildReaper } from '../../src/sys/child-reaper.ts';
import { TtrpcServer } from '../../src/ttrpc/server.ts';
import { GROUP_SERVICE } from './bootstrap/group-join.ts';
import type { IdleTrimmer } from './daemon-memory.ts';
import { TtrpcEventPublisher } from './events/publisher.ts';
import type { ShimFlags } from './flags.ts';
import { openShimLogFifo } from './log.ts';
import type { ShimLog, ShimLogFifo } from './log.ts';
import { TaskService } from './service/task-service.ts';
import { whileRuntimeRuns } from './runtime/child-wait-hook.ts';
import { ShimLifetime } from './shim-lifetime.ts';

export interface ServeOptions {
  readonly flags: ShimFlags;
  readonly bundle: string;
  /** Bound and listening; its connections arrive paused. */
  readonly listener: net.Server;
  /** What happened before the log was open. */
  readonly notes: readonly string[];
  /** performance.now() when readiness was reported. */
  readonly reportedMs: number;
}

type Impl = Partial<TaskServiceImpl>;

/**
 * When the logger and the idle trim load if no runtime process ran by then: a daemon that serves
 * no Create (it lost the race for its socket's group) still writes its lines.
 */
const DEFERRED_LOAD_AFTER_MS = 250;

/**
 * The idle trim (./daemon-memory.ts), armed while the first Create waits for the runtime (see
 * serveTaskApi): its code and native bindings stay off the path to that Create. Activity
 * before then needs no record: the trim's quiet time starts when it is armed.
 */
class DeferredTrimmer {
  #trimmer: IdleTrimmer | undefined;
  #closed = false;

  arm(): void {
    void import('./daemon-memory.ts').then(({ IdleTrimmer }) => {
      if (!this.#closed) this.#trimmer = new IdleTrimmer();
    });
  }

  activity(): void {
    this.#trimmer?.activity();
  }

  close(): void {
    this.#closed = true;
    this.#trimmer?.close();
  }
}

/**
 * Create and Delete as the service does them, plus what a shared shim must track around them:
 * a Create settles the join of its task and counts while in flight; a Delete of the task whose
 * FIFO carries the log moves the log to a live task's FIFO; both re-arm the idle trim.
 */
function trackTasks(impl: Impl, service: TaskService, lifetime: ShimLifetime, fifo: ShimLogFifo, trimmer: DeferredTrimmer, inFlight: { creates: number }): Impl {
  const { create, delete: del } = impl;
  const out: Impl = { ...impl };
  if (create) {
    out.create = async (req, ctx) => {
      lifetime.created(req.id);
      inFlight.creates++;
      trimmer.activity();
      try {
        const res = await create(req, ctx);
        if (fifo.bundle === undefined) fifo.retarget(req.bundle);
        return res;
      } finally {
        inFlight.creates--;
      }
    };
  }
  if (del) {
    out.delete = async (req, ctx) => {
      const bundle = req.execId === '' ? service.containers.get(req.id)?.bundle : undefined;
      const res = await del(req, ctx);
      if (bundle !== undefined) {
        trimmer.activity();
        if (fifo.bundle === bundle) {
          for (const c of service.containers.values()) if (fifo.retarget(c.bundle)) break;
        }
      }
      return res;
    };
  }
  return out;
}

/** Returns the shim's logger. */
export function serveTaskApi({ flags, bundle, listener, notes, reportedMs }: ServeOptions): ShimLog {
  const { log, fifo } = openShimLogFifo(bundle, { debug: flags.debug, namespace: flags.namespace, id: flags.id });
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    log.whenWritten(() => process.exit(1));
  });
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  for (const note of notes) log.warn(note);

  const reaper = new ChildReaper();
  const ttrpcAddress = process.env.TTRPC_ADDRESS ?? '';
  if (ttrpcAddress === '') log.warn('TTRPC_ADDRESS is not set; events cannot be published');
  const events = new TtrpcEventPublisher(ttrpcAddress, flags.namespace, log);
  const server = new TtrpcServer({
    logger: {
      warn: (fields, message) => log.warn(fields, message),
      error: (fields, message) => log.error(fields, message),
    },
  });
  const trimmer = new DeferredTrimmer();

  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    lifetime.markLeaving();
    trimmer.close();
    log.info({ why }, 'shim shutting down');
    // As Go's cleanup: nobody can reach a shim on its way out. Closing the listener unlinks
    // the socket file (libuv does, right before closing the fd), before the events drain.
    listener.close();
    void (async () => {
      await events.flush(5_000);
      events.close();
      await Promise.race([server.shutdown(), new Promise((resolve) => setTimeout(resolve, 2_000))]);
      await server.close();
      reaper.close();
      await log.load();
      process.exit(0);
    })();
  };

  const inFlight = { creates: 0 };
  let service: TaskService | undefined;
  const lifetime = new ShimLifetime({
    tasks: () => (service?.containers.size ?? 0) + inFlight.creates,
    stop,
  });
  // The task whose `start` spawned this daemon has joined it.
  lifetime.join(flags.id);

  service = new TaskService({
    namespace: flags.namespace,
    reaper,
    events,
    log,
    // After the Shutdown response is on its way.
    onShutdown: (id) => setImmediate(() => lifetime.shutdownRequested(id)),
  });
  registerTaskService(server, trackTasks(service.impl(), service, lifetime, fifo, trimmer, inFlight));
  server.register(GROUP_SERVICE, lifetime.handlers());
  server.serve(listener);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  log.info(
    { socket: flags.socket, ttrpcAddress, readyMs: Math.round(reportedMs), servingMs: Math.round(performance.now()) },
    'shim listening',
  );
  // The logger (./log.ts, ShimLog) and the idle trim load while the first Create waits for
  // `runc create` (./runtime/child-wait-hook.ts), or after a moment when no Create comes.
  let deferredLoaded = false;
  const loadDeferred = () => {
    if (deferredLoaded) return;
    deferredLoaded = true;
    clearTimeout(deferredTimer);
    void log.load();
    trimmer.arm();
  };
  const deferredTimer = setTimeout(loadDeferred, DEFERRED_LOAD_AFTER_MS);
  whileRuntimeRuns(loadDeferred);
  return log;
}
