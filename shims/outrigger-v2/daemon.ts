/**
 * The long-running shim. It becomes child subreaper, binds its socket itself (`start` passes
 * -socket) and reports over fd 3 (bootstrap/readiness.ts) as soon as the socket accepts
 * connections, and only then loads the Task service, the ttrpc server with its protobuf
 * schemas, the event publisher and the log (./serve-task-api.ts). That way `start` exits and
 * containerd dials and sends Create while this process is still initialising: connections that
 * arrive meanwhile wait, paused, and are handed to the server once it is ready.
 * If the socket is taken by a live shim of the same group it reports `exists` and leaves; a
 * stale socket is removed.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setChildSubreaper } from '../../src/sys/subreaper.ts';
import { encodeReadiness, READINESS_FD } from './bootstrap/readiness.ts';
import type { Readiness } from './bootstrap/readiness.ts';
import { socketAnswers } from './bootstrap/socket-probe.ts';
import { lockSocket } from './bootstrap/stale-socket-lock.ts';
import { tuneDaemonHeap } from './daemon-heap.ts';
import type { ShimFlags } from './flags.ts';

function report(r: Readiness): void {
  try {
    fs.writeSync(READINESS_FD, encodeReadiness(r));
    fs.closeSync(READINESS_FD);
  } catch {
    // started by hand without the pipe
  }
}

function listen(listener: net.Server, socket: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(socket, () => {
      listener.off('error', reject);
      resolve();
    });
  });
}

type Bound = { readonly state: 'listening'; readonly listener: net.Server } | { readonly state: 'exists' };

/**
 * Binds `socket` (owner-only, like Go's NewSocket). Accepted connections stay paused until the
 * server reads them. A path that is taken belongs to a live shim of the group (`exists`) or is a
 * stale socket, which is removed and rebound. All of it happens under the socket's lock
 * (./bootstrap/stale-socket-lock.ts), the first bind included, so racing daemons end with
 * exactly one listening: a daemon binding outside the lock could put its fresh socket on the
 * path between another's probe and that one's removal of the "stale" path (and the probe itself
 * is refused in the instant between a binder's bind(2) and listen(2)); its chmod then found the
 * path gone. Notes for the log, which is not open yet, go to `notes`.
 */
async function bind(socket: string, notes: string[]): Promise<Bound> {
  fs.mkdirSync(path.dirname(socket), { recursive: true, mode: 0o700 });
  const lock = await lockSocket(socket);
  try {
    const first = await tryListen(socket);
    if (first !== undefined) return first;
    if (await socketAnswers(socket)) return { state: 'exists' };
    notes.push(`removed stale shim socket ${socket}`);
    fs.rmSync(socket, { force: true });
    const bound = await tryListen(socket);
    if (bound === undefined) throw new Error(`cannot bind ${socket}: taken again while holding its lock`);
    return bound;
  } finally {
    lock.release();
  }
}

/** Listening, or undefined when the path is taken. */
async function tryListen(socket: string): Promise<Bound | undefined> {
  const listener = net.createServer({ pauseOnConnect: true });
  try {
    await listen(listener, socket);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return undefined;
    throw new Error(`listen on ${socket}: ${String(err)}`, { cause: err });
  }
  // Connections are only accepted once the event loop polls, after this chmod.
  try {
    fs.chmodSync(socket, 0o600);
  } catch (err) {
    listener.close();
    throw new Error(`chmod 0600 ${socket}: ${String(err)}`, { cause: err });
  }
  return { state: 'listening', listener };
}

export async function runDaemon(flags: ShimFlags): Promise<void> {
  tuneDaemonHeap();
  const bundle = process.cwd();
  try {
    setChildSubreaper(true);
  } catch (err) {
    report({ state: 'failed', error: `cannot become child subreaper: ${String(err)}` });
    process.exitCode = 1;
    return;
  }
  const notes: string[] = [];
  let bound: Bound;
  try {
    bound = await bind(flags.socket, notes);
  } catch (err) {
    report({ state: 'failed', error: err instanceof Error ? err.message : String(err) });
    process.exitCode = 1;
    return;
  }
  if (bound.state === 'exists') {
    report({ state: 'exists' });
    const { openShimLog } = await import('./log.ts');
    const log = openShimLog(bundle, { debug: flags.debug, namespace: flags.namespace, id: flags.id });
    log.info({ socket: flags.socket }, 'a shim for this group already serves the socket');
    await log.load();
    return;
  }
  const { listener } = bound;
  const waiting: net.Socket[] = [];
  const hold = (s: net.Socket) => waiting.push(s);
  listener.on('connection', hold);
  // Node only installs a signal handler once a listener exists. Until the service's own
  // handlers are in, a SIGTERM would kill the process the default way and leave the socket file
  // behind; with a listener it waits for the next turn of the event loop, after the loading
  // below, and reaches the service's graceful stop.
  const untilServing = () => undefined;
  process.on('SIGTERM', untilServing);
  process.on('SIGINT', untilServing);
  const reportedMs = performance.now();
  report({ state: 'listening' });

  const { serveTaskApi } = await import('./serve-task-api.ts');
  const log = serveTaskApi({ flags, bundle, listener, notes, reportedMs });
  listener.off('connection', hold);
  process.off('SIGTERM', untilServing);
  process.off('SIGINT', untilServing);
  // The server has its handlers on every new connection now (it registered first); resume
  // them, and hand over the ones that arrived while it loaded.
  listener.on('connection', (s: net.Socket) => s.resume());
  if (waiting.length > 0) log.debug({ connections: waiting.length }, 'connections made while the service loaded handed over');
  for (const s of waiting.splice(0)) listener.emit('connection', s);
}
