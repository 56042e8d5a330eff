/**
 * src/sys under plain node: every call against the real kernel, real child processes and real
 * peers (a python3 sender for SCM_RIGHTS, a python3 client for SO_PEERCRED).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChildReaper } from '../src/sys/child-reaper.ts';
import { addToEventCounter, createEventFd, readEventCounter } from '../src/sys/eventfd.ts';
import { receiveFd, sendFd, socketPair } from '../src/sys/fd-passing.ts';
import { FdSocketListener } from '../src/sys/fd-socket-listener.ts';
import { errnoName, SysCallError } from '../src/sys/libc.ts';
import { peerCredentials, peerCredentialsOfSocket } from '../src/sys/peer-credentials.ts';
import { getProcessName, MAX_PROCESS_NAME_BYTES, setProcessName } from '../src/sys/process-name.ts';
import { openPty } from '../src/sys/pty.ts';
import { socketFd } from '../src/sys/socket-fd.ts';
import { isChildSubreaper, setChildSubreaper } from '../src/sys/subreaper.ts';
import { decodeWaitStatus, processStartTime, waitPid, type ProcessEnd } from '../src/sys/wait.ts';
import { getWindowSize, setWindowSize } from '../src/sys/winsize.ts';

let tmp: string;
let subreaperBefore: boolean;
const toClose: number[] = [];
const cleanups: Array<() => void> = [];

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-sys-test-'));
  subreaperBefore = isChildSubreaper();
});

afterEach(() => {
  for (const fd of toClose.splice(0)) fs.closeSync(fd);
  for (const cleanup of cleanups.splice(0)) cleanup();
});

afterAll(() => {
  setChildSubreaper(subreaperBefore);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function keep(fd: number): number {
  toClose.push(fd);
  return fd;
}

/** Runs `sh -c script` that prints a background job's pid; resolves with it once sh is gone. */
function grandchildPid(script: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const sh = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    sh.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    sh.on('error', reject);
    sh.on('close', (code) => {
      const pid = Number(out.trim());
      if (code !== 0 || !Number.isInteger(pid) || pid <= 0) reject(new Error(`sh exited ${code} printing ${JSON.stringify(out)}`));
      else resolve(pid);
    });
  });
}

function exitOf(child: ChildProcess): Promise<number | string | null> {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? signal));
  });
}

function procState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

async function until(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('libc errors', () => {
  it('names errno numbers as os.constants.errno does, first name winning', () => {
    expect(errnoName(os.constants.errno.ECHILD)).toBe('ECHILD');
    expect(errnoName(11)).toBe('EAGAIN');
    expect(errnoName(99999)).toBe('errno 99999');
  });

  it('throws a SysCallError naming the call, its arguments and the errno', () => {
    const fd = keep(fs.openSync(path.join(tmp, 'plain-file'), 'w'));
    let err: unknown;
    try {
      setWindowSize(fd, { rows: 10, cols: 20 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SysCallError);
    expect((err as SysCallError).code).toBe('ENOTTY');
    expect((err as SysCallError).errno).toBe(os.constants.errno.ENOTTY);
    expect((err as SysCallError).syscall).toBe('ioctl');
    expect((err as Error).message).toBe(`ioctl(fd ${fd}, TIOCSWINSZ, 10x20) failed: ENOTTY (Inappropriate ioctl for device)`);
  });
});

describe('subreaper', () => {
  it('sets and reads back PR_SET_CHILD_SUBREAPER', () => {
    setChildSubreaper(false);
    expect(isChildSubreaper()).toBe(false);
    setChildSubreaper(true);
    expect(isChildSubreaper()).toBe(true);
  });

  it('makes an orphaned grandchild our child', async () => {
    setChildSubreaper(true);
    const pid = await grandchildPid('sleep 5 >/dev/null 2>&1 </dev/null & echo $!');
    try {
      expect(parentOf(pid)).toBe(process.pid);
    } finally {
      process.kill(pid, 'SIGKILL');
      await until(`pid ${pid} to end`, () => procState(pid) === 'Z');
      expect(waitPid(pid)).toEqual({ state: 'signaled', signal: 9, signalName: 'SIGKILL', coreDumped: false });
    }
  });
});

describe('process name', () => {
  it('sets the comm name the kernel shows in /proc/self/comm and restores it', () => {
    const before = getProcessName();
    expect(before).toBe(fs.readFileSync('/proc/self/comm', 'utf8').trimEnd());
    try {
      setProcessName('outrigger-shim');
      expect(fs.readFileSync('/proc/self/comm', 'utf8')).toBe('outrigger-shim\n');
      expect(getProcessName()).toBe('outrigger-shim');
    } finally {
      setProcessName(before);
    }
    expect(fs.readFileSync('/proc/self/comm', 'utf8').trimEnd()).toBe(before);
  });

  it('refuses names the kernel would truncate, empty names and NULs', () => {
    expect(MAX_PROCESS_NAME_BYTES).toBe(15);
    expect(() => setProcessName('x'.repeat(16))).toThrow(/1-15 bytes/);
    expect(() => setProcessName('ééééééééé')).toThrow(/18 bytes/);
    expect(() => setProcessName('')).toThrow(RangeError);
    expect(() => setProcessName('a\0b')).toThrow(RangeError);
  });
});

describe('waitPid', () => {
  it('decodes every exit code and terminating signal like the W* macros', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), (code) => {
        expect(decodeWaitStatus(code << 8)).toEqual({ state: 'exited', code });
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.boolean(), (signal, core) => {
        const end = decodeWaitStatus(signal | (core ? 0x80 : 0));
        expect(end).toMatchObject({ state: 'signaled', signal, coreDumped: core });
      }),
    );
    expect(decodeWaitStatus(9)).toEqual({ state: 'signaled', signal: 9, signalName: 'SIGKILL', coreDumped: false });
    expect(decodeWaitStatus(0x86)).toEqual({ state: 'signaled', signal: 6, signalName: 'SIGABRT', coreDumped: true });
  });

  it('refuses pids that would wait for more than one process', () => {
    expect(() => waitPid(0)).toThrow(RangeError);
    expect(() => waitPid(-1)).toThrow(/refusing pid -1/);
    expect(() => waitPid(-1234)).toThrow(RangeError);
    expect(() => waitPid(1.5)).toThrow(RangeError);
    expect(() => waitPid(Number.NaN)).toThrow(RangeError);
  });

  it('refuses the pid of a child_process child, whose exit then still reaches Node', async () => {
    const child = spawn('sh', ['-c', 'sleep 0.2; exit 6'], { stdio: 'ignore' });
    const exit = exitOf(child);
    expect(() => waitPid(child.pid!)).toThrow(/child_process child/);
    expect(await exit).toBe(6);
  });

  it('reports a process that is not our child as running, not ours', () => {
    expect(waitPid(1)).toEqual({ state: 'running', ourChild: false });
  });

  it('reports a pid with no process as gone', () => {
    const pidMax = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    expect(waitPid(pidMax + 1)).toEqual({ state: 'gone' });
  });

  it('reports our running grandchild as running and ours, then its exit code once', async () => {
    setChildSubreaper(true);
    const pid = await grandchildPid('(sleep 0.3; exit 17) >/dev/null 2>&1 </dev/null & echo $!');
    expect(waitPid(pid)).toEqual({ state: 'running', ourChild: true });
    await until(`pid ${pid} to become a zombie`, () => procState(pid) === 'Z');
    expect(waitPid(pid)).toEqual({ state: 'exited', code: 17 });
    expect(waitPid(pid)).toEqual({ state: 'gone' });
  });

  it('reads start times that tell processes apart', () => {
    const mine = processStartTime(process.pid);
    expect(mine).toBeGreaterThan(0);
    expect(processStartTime(process.pid)).toBe(mine);
    expect(processStartTime(1)).toBeLessThanOrEqual(mine!);
    expect(processStartTime(Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1)).toBeNull();
  });
});

describe('ChildReaper', () => {
  let reaper: ChildReaper;
  beforeAll(() => setChildSubreaper(true));
  afterEach(() => reaper?.close());

  it('reports a grandchild exit code', async () => {
    reaper = new ChildReaper();
    const pid = await grandchildPid('(sleep 0.2; exit 42) >/dev/null 2>&1 </dev/null & echo $!');
    expect(await reaper.track(pid)).toEqual({ state: 'exited', code: 42 });
    expect(reaper.pids).toEqual([]);
  });

  it('reports a grandchild killed by SIGKILL as signal 9', async () => {
    reaper = new ChildReaper();
    const pid = await grandchildPid('sleep 5 >/dev/null 2>&1 </dev/null & echo $!');
    const end = reaper.track(pid);
    expect(reaper.pids).toEqual([pid]);
    process.kill(pid, 'SIGKILL');
    expect(await end).toEqual({ state: 'signaled', signal: 9, signalName: 'SIGKILL', coreDumped: false });
  });

  it('reaps a grandchild that was already our zombie when tracking started', async () => {
    reaper = new ChildReaper();
    // sh exits at once (it must not wait for anything, or it would reap its own job); the job
    // ends shortly after, as our zombie, before we track it.
    const pid = await grandchildPid('(sleep 0.1; exit 23) >/dev/null 2>&1 </dev/null & echo $!');
    await until(`pid ${pid} to be our zombie`, () => procState(pid) === 'Z' || procState(pid) === null);
    expect(procState(pid)).toBe('Z');
    expect(await reaper.track(pid)).toEqual({ state: 'exited', code: 23 });
    expect(procState(pid)).toBeNull();
  });

  it('ends a grandchild its own parent already reaped as gone', async () => {
    reaper = new ChildReaper();
    const pid = await grandchildPid('(exit 7) & pid=$!; wait $pid; echo $pid');
    expect(await reaper.track(pid)).toEqual({ state: 'gone' });
  });

  it('notices, by re-checking, that a pid owned by another living parent went away', async () => {
    reaper = new ChildReaper({ recheckMs: 20 });
    // The subshell reaps its job; sh itself stays alive, so no SIGCHLD comes our way.
    const sh = spawn('sh', ['-c', '( sleep 0.2 >/dev/null 2>&1 </dev/null & echo $!; wait ); sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    cleanups.push(() => sh.kill('SIGKILL'));
    const pid = await new Promise<number>((resolve) => sh.stdout.setEncoding('utf8').once('data', (s: string) => resolve(Number(s.trim()))));
    const end = reaper.track(pid);
    expect(waitPid(pid)).toEqual({ state: 'running', ourChild: false });
    expect(await end).toEqual({ state: 'gone' });
    expect(sh.exitCode).toBeNull();
  });

  it("emits 'exit' exactly once per pid and gives one promise per pid", async () => {
    reaper = new ChildReaper();
    const events: Array<[number, ProcessEnd]> = [];
    reaper.on('exit', (pid, end) => events.push([pid, end]));
    const pid = await grandchildPid('(sleep 0.2; exit 9) >/dev/null 2>&1 </dev/null & echo $!');
    const first = reaper.track(pid);
    expect(reaper.track(pid)).toBe(first);
    expect(await first).toEqual({ state: 'exited', code: 9 });
    reaper.reapTracked();
    process.kill(process.pid, 'SIGCHLD');
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toEqual([[pid, { state: 'exited', code: 9 }]]);
  });

  it('leaves the exits of child_process children to Node while it reaps', async () => {
    reaper = new ChildReaper();
    const grandchildren = await Promise.all([
      grandchildPid('(sleep 0.2; exit 11) >/dev/null 2>&1 </dev/null & echo $!'),
      grandchildPid('(sleep 0.25; exit 12) >/dev/null 2>&1 </dev/null & echo $!'),
    ]);
    const ends = grandchildren.map((pid) => reaper.track(pid));
    const children = [
      spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' }),
      spawn('sh', ['-c', 'sleep 0.2; exit 4'], { stdio: 'ignore' }),
      spawn('sh', ['-c', 'sleep 0.25; kill -9 $$'], { stdio: 'ignore' }),
      ...Array.from({ length: 10 }, (_, i) => spawn('sh', ['-c', `exit ${20 + i}`], { stdio: 'ignore' })),
    ];
    const codes = await Promise.all(children.map(exitOf));
    expect(codes).toEqual([3, 4, 'SIGKILL', 20, 21, 22, 23, 24, 25, 26, 27, 28, 29]);
    expect(await Promise.all(ends)).toEqual([
      { state: 'exited', code: 11 },
      { state: 'exited', code: 12 },
    ]);
  });

  it('refuses wildcard pids at once and rejects pending ends on close', async () => {
    reaper = new ChildReaper();
    expect(() => reaper.track(0)).toThrow(RangeError);
    expect(() => reaper.track(-1)).toThrow(RangeError);
    const pid = await grandchildPid('sleep 5 >/dev/null 2>&1 </dev/null & echo $!');
    cleanups.push(() => {
      process.kill(pid, 'SIGKILL');
    });
    const end = reaper.track(pid);
    reaper.close();
    await expect(end).rejects.toThrow(`ChildReaper closed while waiting for pid ${pid}`);
    expect(process.listeners('SIGCHLD')).toHaveLength(0);
  });
});

describe('fd passing', () => {
  it('sends a descriptor with its payload over a socket pair and receives it close-on-exec', () => {
    const [a, b] = socketPair().map(keep) as [number, number];
    const file = path.join(tmp, 'passed-over-pair');
    fs.writeFileSync(file, 'pair content');
    const fd = keep(fs.openSync(file, 'r'));
    expect(receiveFd(b)).toBeNull();
    sendFd(a, fd, Buffer.from('/dev/pts/7'));
    const received = receiveFd(b)!;
    keep(received.fd);
    expect(received.fd).not.toBe(fd);
    expect(received.payload.toString()).toBe('/dev/pts/7');
    expect(fs.readlinkSync(`/proc/self/fd/${received.fd}`)).toBe(file);
    expect(fs.readFileSync(received.fd, 'utf8')).toBe('pair content');
    const flags = parseInt(/flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${received.fd}`, 'utf8'))![1]!, 8);
    expect(flags & 0o2000000).toBe(0o2000000);
    expect(receiveFd(b)).toBeNull();
  });

  it('refuses data without a descriptor and a peer that hung up', () => {
    const [a, b] = socketPair().map(keep) as [number, number];
    fs.writeSync(a, 'no fd here');
    expect(() => receiveFd(b)).toThrow(/expected 1 file descriptor \(SCM_RIGHTS\), got 0 with 10 bytes/);
    fs.closeSync(toClose.splice(toClose.indexOf(a), 1)[0]!);
    expect(() => receiveFd(b)).toThrow(/peer closed the connection without sending a file descriptor/);
  });

  it('reports recvmsg on something that is not a socket with errno ENOTSOCK', () => {
    const fd = keep(fs.openSync(path.join(tmp, 'not-a-socket'), 'w'));
    expect(() => receiveFd(fd)).toThrow(`recvmsg(fd ${fd}, MSG_DONTWAIT|MSG_CMSG_CLOEXEC) failed: ENOTSOCK`);
  });

  it('receives the descriptor a separate process (python3 socket.send_fds) passes on a socket path', async () => {
    const file = path.join(tmp, 'from-python');
    fs.writeFileSync(file, 'python sent this');
    const listener = await FdSocketListener.listen(path.join(tmp, 'console-1.sock'));
    // Connects, waits a little (so we poll an empty socket first), then sends the fd.
    const sender = spawn('python3', [
      '-c',
      'import os, socket, sys, time\n' +
        's = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(0.2)\n' +
        'fd = os.open(sys.argv[2], os.O_RDONLY)\n' +
        'socket.send_fds(s, [b"/dev/pts/42"], [fd]); s.close()',
      listener.path,
      file,
    ], { stdio: ['ignore', 'ignore', 'inherit'] });
    const senderExit = exitOf(sender);
    const received = await listener.receive({ timeoutMs: 10_000 });
    keep(received.fd);
    expect(received.payload.toString()).toBe('/dev/pts/42');
    expect(fs.readlinkSync(`/proc/self/fd/${received.fd}`)).toBe(file);
    expect(fs.readFileSync(received.fd, 'utf8')).toBe('python sent this');
    expect(await senderExit).toBe(0);
    expect(fs.existsSync(listener.path)).toBe(false);
  });

  it('skips a connection that hangs up without a descriptor and takes the next one', async () => {
    const file = path.join(tmp, 'second-sender');
    fs.writeFileSync(file, 'second');
    const listener = await FdSocketListener.listen(path.join(tmp, 'console-2.sock'));
    const sender = spawn('python3', [
      '-c',
      'import os, socket, sys\n' +
        'socket.socket(socket.AF_UNIX).connect(sys.argv[1])\n' +
        's = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n' +
        'socket.send_fds(s, [b"x"], [os.open(sys.argv[2], os.O_RDONLY)]); s.close()',
      listener.path,
      file,
    ], { stdio: ['ignore', 'ignore', 'inherit'] });
    const received = await listener.receive({ timeoutMs: 10_000 });
    keep(received.fd);
    expect(fs.readFileSync(received.fd, 'utf8')).toBe('second');
    expect(await exitOf(sender)).toBe(0);
  });

  it('times out with an error naming the socket when no descriptor arrives', async () => {
    const listener = await FdSocketListener.listen(path.join(tmp, 'console-3.sock'));
    const silent = net.connect(listener.path);
    silent.on('error', () => {});
    cleanups.push(() => silent.destroy());
    await expect(listener.receive({ timeoutMs: 300 })).rejects.toThrow(
      `no file descriptor received on unix socket ${listener.path} within 300 ms (1 connection(s) accepted)`,
    );
    expect(fs.existsSync(listener.path)).toBe(false);
  });

  it('stops waiting when the caller aborts, and removes the socket', async () => {
    const listener = await FdSocketListener.listen(path.join(tmp, 'console-4.sock'));
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('runc create failed')), 50);
    await expect(listener.receive({ timeoutMs: 10_000, signal: controller.signal })).rejects.toThrow('runc create failed');
    expect(fs.existsSync(listener.path)).toBe(false);
  });

  it('refuses to listen on a path that exists', async () => {
    const taken = path.join(tmp, 'taken.sock');
    fs.writeFileSync(taken, '');
    await expect(FdSocketListener.listen(taken)).rejects.toThrow(`cannot listen on unix socket ${taken}: listen EADDRINUSE`);
  });
});

describe('window size', () => {
  it('sets the size of a pty and reads the same size back from both ends', () => {
    const pty = openPty();
    keep(pty.masterFd);
    expect(pty.slavePath).toMatch(/^\/dev\/pts\/\d+$/);
    const slave = keep(fs.openSync(pty.slavePath, fs.constants.O_RDWR | fs.constants.O_NOCTTY));
    setWindowSize(pty.masterFd, { rows: 51, cols: 173 });
    expect(getWindowSize(pty.masterFd)).toEqual({ rows: 51, cols: 173, xPixels: 0, yPixels: 0 });
    expect(getWindowSize(slave)).toEqual({ rows: 51, cols: 173, xPixels: 0, yPixels: 0 });
    setWindowSize(pty.masterFd, { rows: 24, cols: 80, xPixels: 640, yPixels: 384 });
    expect(getWindowSize(slave)).toEqual({ rows: 24, cols: 80, xPixels: 640, yPixels: 384 });
  });

  it('refuses sizes outside unsigned short', () => {
    const pty = openPty();
    keep(pty.masterFd);
    expect(() => setWindowSize(pty.masterFd, { rows: 65536, cols: 80 })).toThrow('window size rows must be 0-65535, got 65536');
    expect(() => setWindowSize(pty.masterFd, { rows: 24, cols: -1 })).toThrow(RangeError);
  });
});

describe('eventfd', () => {
  it('creates a non-blocking close-on-exec eventfd whose counter reads back and resets', () => {
    const fd = keep(createEventFd());
    expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toBe('anon_inode:[eventfd]');
    const flags = parseInt(/flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!, 8);
    expect(flags & (0o2000000 | 0o4000)).toBe(0o2000000 | 0o4000);
    expect(readEventCounter(fd)).toBeNull();
    addToEventCounter(fd, 2n);
    addToEventCounter(fd, 5n);
    expect(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')).toMatch(/eventfd-count:\s+7\n/);
    expect(readEventCounter(fd)).toBe(7n);
    expect(readEventCounter(fd)).toBeNull();
  });
});

describe('peer credentials', () => {
  async function serve(): Promise<{ server: net.Server; path: string; accepted: Promise<net.Socket> }> {
    const sockPath = path.join(tmp, `peer-${Math.random().toString(36).slice(2)}.sock`);
    const server = net.createServer();
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(sockPath, resolve));
    cleanups.push(() => server.close());
    return { server, path: sockPath, accepted };
  }

  it('reads pid, uid and gid of an in-process client, from both ends', async () => {
    const { path: sockPath, accepted } = await serve();
    const client = net.connect(sockPath);
    cleanups.push(() => client.destroy());
    await new Promise<void>((resolve) => client.once('connect', resolve));
    const serverSide = await accepted;
    cleanups.push(() => serverSide.destroy());
    const me = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    expect(peerCredentialsOfSocket(serverSide)).toEqual(me);
    expect(peerCredentials(socketFd(client))).toEqual(me);
  });

  it('reads the pid of a client in another process', async () => {
    const { path: sockPath, accepted } = await serve();
    const client = spawn('python3', ['-c', 'import socket, sys\ns = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(1)', sockPath], { stdio: 'ignore' });
    const clientExit = exitOf(client);
    const serverSide = await accepted;
    expect(peerCredentialsOfSocket(serverSide)).toEqual({ pid: client.pid, uid: process.getuid!(), gid: process.getgid!() });
    serverSide.end('x');
    expect(await clientExit).toBe(0);
  });

  it('explains that a socket without a descriptor has none', () => {
    expect(() => socketFd(new net.Socket())).toThrow(/socket has no file descriptor/);
  });
});
