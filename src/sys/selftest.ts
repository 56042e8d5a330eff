/**
 * Scenario checks of src/sys that run wherever they are called: under plain node (unit tests)
 * and inside the SEA (`outrigger sys-selftest`), which is what proves node:ffi works in the
 * shipped binary. Each scenario is bounded in time and reports what it saw, never throws.
 *
 * Side effects on the calling process: it becomes a child subreaper for the duration (the
 * previous setting is restored at the end) and its comm name changes briefly (restored).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { ChildReaper } from './child-reaper.ts';
import { addToEventCounter, createEventFd, readEventCounter } from './eventfd.ts';
import { sendFd } from './fd-passing.ts';
import { FdSocketListener } from './fd-socket-listener.ts';
import { peerCredentialsOfSocket } from './peer-credentials.ts';
import { getProcessName, setProcessName } from './process-name.ts';
import { openPty } from './pty.ts';
import { socketFd } from './socket-fd.ts';
import { isChildSubreaper, setChildSubreaper } from './subreaper.ts';
import { waitPid, type ProcessEnd } from './wait.ts';
import { getWindowSize, setWindowSize } from './winsize.ts';

export interface ScenarioResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** No scenario may take longer than this; a hang becomes a failed result. */
const SCENARIO_TIMEOUT_MS = 10_000;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

class CheckFailed extends Error {}

function expect(condition: boolean, message: string): asserts condition {
  if (!condition) throw new CheckFailed(message);
}

const show = (value: unknown): string => JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));

/** Runs `sh -c script` (which prints a background job's pid) and returns that pid once sh is
 * gone, so the job has been reparented to us (or has already been reaped by sh). */
function grandchildPid(script: string): Promise<number> {
  return new Promise((resolve, reject) => {
    // stdin/stderr ignored and the job's stdout redirected in the script: 'close' must not
    // wait for a pipe the background job keeps open.
    const sh = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    sh.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    sh.on('error', reject);
    sh.on('close', (code) => {
      const pid = Number(out.trim());
      // A pid of 0 would be a process-group wait; waitPid refuses it anyway, but say why here.
      if (code !== 0 || !Number.isInteger(pid) || pid <= 0) reject(new Error(`sh -c ${show(script)} exited ${code} printing ${show(out)}`));
      else resolve(pid);
    });
  });
}

function parentPid(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

function childExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
}

type Scenario = (reaper: ChildReaper) => Promise<string>;

const scenarios: ReadonlyArray<readonly [string, Scenario]> = [
  [
    'subreaper',
    async () => {
      setChildSubreaper(true);
      const on = isChildSubreaper();
      expect(on, `PR_GET_CHILD_SUBREAPER is ${on} after PR_SET_CHILD_SUBREAPER 1`);
      return `PR_GET_CHILD_SUBREAPER = ${on}`;
    },
  ],
  [
    'process-name',
    async () => {
      // PR_SET_NAME names the calling thread; on the main thread that is the process's comm.
      const commFile = isMainThread ? '/proc/self/comm' : '/proc/thread-self/comm';
      const before = getProcessName();
      const wanted = `ort-${process.pid}`.slice(0, 15);
      setProcessName(wanted);
      let seen: string;
      try {
        seen = fs.readFileSync(commFile, 'utf8').trimEnd();
      } finally {
        setProcessName(before);
      }
      const restored = fs.readFileSync(commFile, 'utf8').trimEnd();
      expect(seen === wanted, `${commFile} is ${show(seen)} after PR_SET_NAME ${show(wanted)}`);
      expect(restored === before, `${commFile} is ${show(restored)} after restoring ${show(before)}`);
      let refused = false;
      try {
        setProcessName('sixteen-bytes-xx');
      } catch {
        refused = true;
      }
      expect(refused, 'a 16-byte name was accepted');
      return `${commFile}: ${show(before)} -> ${show(seen)} -> ${show(restored)}; 16-byte name refused`;
    },
  ],
  [
    'grandchild-sigkill',
    async (reaper) => {
      const pid = await grandchildPid('sleep 5 >/dev/null 2>&1 </dev/null & echo $!');
      const end = reaper.track(pid);
      end.catch(() => {}); // awaited below unless a check fails first
      const ppid = parentPid(pid);
      try {
        expect(ppid === process.pid, `grandchild ${pid} has parent ${ppid}, not us (${process.pid}): not reparented`);
      } finally {
        process.kill(pid, 'SIGKILL');
      }
      const result = await end;
      expect(
        result.state === 'signaled' && result.signal === 9 && result.signalName === 'SIGKILL',
        `grandchild ${pid} ended ${show(result)}, expected signal 9 SIGKILL`,
      );
      return `pid ${pid} reparented to ${ppid}; ${show(result)}`;
    },
  ],
  [
    'grandchild-exit-42',
    async (reaper) => {
      const pid = await grandchildPid('(sleep 0.2; exit 42) >/dev/null 2>&1 </dev/null & echo $!');
      const result = await reaper.track(pid);
      expect(result.state === 'exited' && result.code === 42, `grandchild ${pid} ended ${show(result)}, expected exit 42`);
      return `pid ${pid}: ${show(result)}`;
    },
  ],
  [
    'grandchild-reaped-by-parent',
    async (reaper) => {
      const pid = await grandchildPid('(exit 7) & pid=$!; wait $pid; echo $pid');
      const result = await reaper.track(pid);
      expect(result.state === 'gone', `grandchild ${pid} already reaped by sh ended ${show(result)}, expected gone`);
      return `pid ${pid}: ${show(result)}`;
    },
  ],
  [
    'child-process-exit-unaffected',
    async (reaper) => {
      // Reaper busy with a grandchild that ends while Node's own children end around it.
      const grandchild = await grandchildPid('(sleep 0.15; exit 5) >/dev/null 2>&1 </dev/null & echo $!');
      const grandchildEnd = reaper.track(grandchild);
      grandchildEnd.catch(() => {}); // awaited below unless a child_process exit fails first
      const children = [
        spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' }),
        spawn('sh', ['-c', 'sleep 0.15; exit 4'], { stdio: 'ignore' }),
        spawn('sh', ['-c', 'kill -9 $$'], { stdio: 'ignore' }),
      ];
      const ends = await Promise.all(children.map(childExit));
      const grandchildResult: ProcessEnd = await grandchildEnd;
      const codes = ends.map((e) => e.code ?? e.signal);
      expect(show(codes) === show([3, 4, 'SIGKILL']), `child_process exits ${show(codes)}, expected [3,4,"SIGKILL"]`);
      expect(grandchildResult.state === 'exited' && grandchildResult.code === 5, `grandchild ended ${show(grandchildResult)}, expected exit 5`);
      return `child_process exits ${show(codes)}; grandchild ${show(grandchildResult)}`;
    },
  ],
  [
    'wait-refuses-wildcard-pids',
    async () => {
      const refusals: string[] = [];
      for (const pid of [0, -1]) {
        try {
          waitPid(pid);
        } catch (err) {
          refusals.push((err as Error).message);
          continue;
        }
        throw new CheckFailed(`waitPid(${pid}) did not throw`);
      }
      const child = spawn('sh', ['-c', 'sleep 0.2'], { stdio: 'ignore' });
      const exit = childExit(child);
      expect(child.pid !== undefined, 'spawn gave no pid');
      try {
        waitPid(child.pid);
        throw new CheckFailed(`waitPid(${child.pid}) on a child_process child did not throw`);
      } catch (err) {
        if (err instanceof CheckFailed) throw err;
        refusals.push((err as Error).message);
      }
      const { code } = await exit;
      expect(code === 0, `child_process child exited ${code} after the refused wait`);
      return refusals.join(' | ');
    },
  ],
  [
    'fd-passing',
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-sys-'));
      const content = `fd passing ${process.pid} ${Date.now()}`;
      const file = path.join(dir, 'passed');
      fs.writeFileSync(file, content);
      const listener = await FdSocketListener.listen(path.join(dir, 'console.sock'));
      const client = net.connect(listener.path);
      client.on('error', () => {});
      const fileFd = fs.openSync(file, 'r');
      try {
        const sent = new Promise<void>((resolve, reject) =>
          client.once('connect', () => {
            try {
              sendFd(socketFd(client), fileFd, Buffer.from('/dev/pts/selftest'));
              resolve();
            } catch (err) {
              reject(err as Error);
            }
          }),
        );
        const [received] = await Promise.all([listener.receive({ timeoutMs: 5000 }), sent]);
        try {
          const via = fs.readFileSync(received.fd, 'utf8');
          const target = fs.readlinkSync(`/proc/self/fd/${received.fd}`);
          const cloexec = /flags:\s+0?(\d+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${received.fd}`, 'utf8'));
          const closeOnExec = cloexec !== null && (parseInt(cloexec[1]!, 8) & 0o2000000) !== 0;
          expect(received.fd !== fileFd && via === content, `fd ${received.fd} -> ${target} read ${show(via)}`);
          expect(received.payload.toString() === '/dev/pts/selftest', `payload ${show(received.payload.toString())}`);
          expect(closeOnExec, `received fd ${received.fd} is not close-on-exec`);
          expect(!fs.existsSync(listener.path), `socket ${listener.path} still exists after receive`);
          return `sent fd ${fileFd}, received fd ${received.fd} -> ${target} (O_CLOEXEC) with payload ${show(received.payload.toString())}`;
        } finally {
          fs.closeSync(received.fd);
        }
      } finally {
        client.destroy();
        fs.closeSync(fileFd);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  ],
  [
    'winsize',
    async () => {
      const pty = openPty();
      try {
        const seen = [];
        for (const size of [{ rows: 24, cols: 80 }, { rows: 51, cols: 173 }]) {
          setWindowSize(pty.masterFd, size);
          const got = getWindowSize(pty.masterFd);
          expect(got.rows === size.rows && got.cols === size.cols, `TIOCGWINSZ gave ${show(got)} after TIOCSWINSZ ${show(size)}`);
          seen.push(`${got.rows}x${got.cols}`);
        }
        return `pty ${pty.slavePath}: ${seen.join(', ')}`;
      } finally {
        fs.closeSync(pty.masterFd);
      }
    },
  ],
  [
    'eventfd',
    async () => {
      const fd = createEventFd();
      try {
        const empty = readEventCounter(fd);
        addToEventCounter(fd, 2n);
        addToEventCounter(fd, 5n);
        const sum = readEventCounter(fd);
        const after = readEventCounter(fd);
        expect(empty === null && sum === 7n && after === null, `reads ${show([empty, sum, after])}, expected [null, 7n, null]`);
        return `reads ${show([empty, sum, after])}`;
      } finally {
        fs.closeSync(fd);
      }
    },
  ],
  [
    'peer-credentials',
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-sys-'));
      const server = net.createServer();
      try {
        const sockPath = path.join(dir, 'peer.sock');
        await new Promise<void>((resolve, reject) => server.once('error', reject).listen(sockPath, resolve));
        const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
        const client = net.connect(sockPath);
        client.on('error', () => {});
        await new Promise<void>((resolve) => client.once('connect', resolve));
        const serverSide = await accepted;
        try {
          const peer = peerCredentialsOfSocket(serverSide);
          const uid = process.getuid?.();
          const gid = process.getgid?.();
          expect(peer.uid === uid && peer.gid === gid && peer.pid === process.pid, `peer ${show(peer)}, expected pid ${process.pid} uid ${uid} gid ${gid}`);
          return `peer ${show(peer)}`;
        } finally {
          serverSide.destroy();
          client.destroy();
        }
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  ],
];

export const scenarioNames: readonly string[] = scenarios.map(([name]) => name);

/** Runs every scenario in order; the results say which passed and what each saw. */
export async function runSysSelftest(): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  let subreaperBefore: boolean | undefined;
  try {
    subreaperBefore = isChildSubreaper();
  } catch (err) {
    results.push({ name: 'ffi-binding', ok: false, detail: `node:ffi libc binding failed: ${(err as Error).message}` });
    return results;
  }
  const reaper = new ChildReaper();
  try {
    for (const [name, scenario] of scenarios) {
      try {
        const detail = await withTimeout(scenario(reaper), SCENARIO_TIMEOUT_MS, name);
        results.push({ name, ok: true, detail });
      } catch (err) {
        results.push({ name, ok: false, detail: err instanceof Error ? err.message : String(err) });
      }
    }
  } finally {
    reaper.close();
    setChildSubreaper(subreaperBefore);
  }
  return results;
}
