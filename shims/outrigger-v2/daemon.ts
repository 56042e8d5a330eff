/**
 * The long-running shim: child subreaper, the Task service on its socket (both service names),
 * events to $TTRPC_ADDRESS, its log on the bundle's FIFO. It binds the socket itself (`start`
 * passes -socket) and reports over fd 3 (bootstrap/readiness.ts). If the socket is taken by a
 * live shim of the same group it reports `exists` and leaves; a stale socket is removed.
 * It ends on Shutdown with no container left, or on SIGTERM/SIGINT.
 */
import fs from 'node:fs';
import path from 'node:path';
import { registerTaskService } from '../../src/api/task-service.ts';
import { ChildReaper } from '../../src/sys/child-reaper.ts';
import { setChildSubreaper } from '../../src/sys/subreaper.ts';
import { TtrpcServer } from '../../src/ttrpc/server.ts';
import { encodeReadiness, READINESS_FD } from './bootstrap/readiness.ts';
import type { Readiness } from './bootstrap/readiness.ts';
import { socketAnswers } from './bootstrap/start.ts';
import { TtrpcEventPublisher } from './events/publisher.ts';
import type { ShimFlags } from './flags.ts';
import { openShimLog } from './log.ts';
import type { Logger } from './log.ts';
import { TaskService } from './service/task-service.ts';

function report(r: Readiness): void {
  try {
    fs.writeSync(READINESS_FD, encodeReadiness(r));
    fs.closeSync(READINESS_FD);
  } catch {
    // started by hand without the pipe
  }
}

async function bind(server: TtrpcServer, socket: string, log: Logger): Promise<'listening' | 'exists'> {
  fs.mkdirSync(path.dirname(socket), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await server.listen(socket);
      return 'listening';
    } catch (err) {
      if (!/EADDRINUSE/.test(String(err))) throw err;
      if (await socketAnswers(socket)) return 'exists';
      log.warn({ socket }, 'removing stale shim socket');
      fs.rmSync(socket, { force: true });
    }
  }
  throw new Error(`cannot bind ${socket}: it keeps being taken`);
}

export async function runDaemon(flags: ShimFlags): Promise<void> {
  const bundle = process.cwd();
  const log = openShimLog(bundle, { debug: flags.debug, namespace: flags.namespace, id: flags.id });
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));

  try {
    setChildSubreaper(true);
  } catch (err) {
    report({ state: 'failed', error: `cannot become child subreaper: ${String(err)}` });
    process.exitCode = 1;
    return;
  }
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

  let bound: 'listening' | 'exists';
  try {
    bound = await bind(server, flags.socket, log);
  } catch (err) {
    report({ state: 'failed', error: err instanceof Error ? err.message : String(err) });
    process.exitCode = 1;
    return;
  }
  if (bound === 'exists') {
    log.info({ socket: flags.socket }, 'a shim for this group already serves the socket');
    report({ state: 'exists' });
    reaper.close();
    return;
  }
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  log.info({ socket: flags.socket, ttrpcAddress, startupMs: Math.round(performance.now()) }, 'shim listening');
  report({ state: 'listening' });
}
