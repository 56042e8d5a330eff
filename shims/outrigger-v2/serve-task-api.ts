/**
 * The shim daemon once its socket listens (./daemon.ts): the log on the bundle's FIFO, the
 * child reaper, events to $TTRPC_ADDRESS, and the Task service (both service names) on the
 * listening socket. It ends on Shutdown with no container left, or on SIGTERM/SIGINT.
 */
import type net from 'node:net';
import { registerTaskService } from '../../src/api/task-service.ts';
import { ChildReaper } from '../../src/sys/child-reaper.ts';
import { TtrpcServer } from '../../src/ttrpc/server.ts';
import { TtrpcEventPublisher } from './events/publisher.ts';
import type { ShimFlags } from './flags.ts';
import { openShimLog } from './log.ts';
import type { Logger } from './log.ts';
import { TaskService } from './service/task-service.ts';

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

/** Returns the shim's logger. */
export function serveTaskApi({ flags, bundle, listener, notes, reportedMs }: ServeOptions): Logger {
  const log = openShimLog(bundle, { debug: flags.debug, namespace: flags.namespace, id: flags.id });
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
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

  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
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
      process.exit(0);
    })();
  };

  const service = new TaskService({
    namespace: flags.namespace,
    reaper,
    events,
    log,
    // After the Shutdown response is on its way.
    onShutdown: () => setImmediate(() => stop('Shutdown RPC with no containers left')),
  });
  registerTaskService(server, service.impl());
  server.serve(listener);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  log.info(
    { socket: flags.socket, ttrpcAddress, readyMs: Math.round(reportedMs), servingMs: Math.round(performance.now()) },
    'shim listening',
  );
  return log;
}
