/**
 * Terminal stdio (src/stdio/console-io.ts) with real kernel objects: a pty made here stands in
 * for the one runc makes, a real `sh` runs on its slave, and the "runtime" connects to the
 * console socket and passes the master with SCM_RIGHTS exactly as runc's --console-socket
 * does. The client side opens the FIFOs the way ctr does. What matters: all output arrives,
 * in order, and the client sees EOF once the process is gone; input and window size reach the
 * process; a failed runtime call leaves nothing open.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useFifoDir } from './support/fifo-dir.ts';
import { ConsoleIo } from '../src/stdio/console-io.ts';
import { StdioError } from '../src/stdio/process-io.ts';
import { sendFd } from '../src/sys/fd-passing.ts';
import { openPty } from '../src/sys/pty.ts';
import { socketFd } from '../src/sys/socket-fd.ts';

const tmp = useFifoDir('stdio-console-');
const fifo = tmp.fifo;

/** ctr's reader: opened non-blocking before the shim opens its end, read to EOF. */
function clientReader(p: string): Promise<Buffer> {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const sock = new net.Socket({ fd, readable: true, writable: false });
  const chunks: Buffer[] = [];
  sock.on('data', (d: Buffer) => chunks.push(d));
  return new Promise((resolve) => sock.once('end', () => resolve(Buffer.concat(chunks))));
}

/** Starts `script` on a new pty's slave and returns a "runtime" that sends the master to the console socket. */
function ptyProcess(script: string): { child: Promise<ChildProcess>; start: (socket: string) => Promise<void> } {
  let started!: (c: ChildProcess) => void;
  const child = new Promise<ChildProcess>((resolve) => (started = resolve));
  const start = async (socket: string): Promise<void> => {
    const pty = openPty();
    const slave = fs.openSync(pty.slavePath, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    const c = spawn('sh', ['-c', script], { stdio: [slave, slave, slave] });
    fs.closeSync(slave);
    const conn = net.connect(socket);
    await new Promise<void>((resolve, reject) => conn.once('connect', resolve).once('error', reject));
    sendFd(socketFd(conn), pty.masterFd, Buffer.from(pty.slavePath));
    fs.closeSync(pty.masterFd);
    conn.destroy();
    started(c);
  };
  return { child, start };
}

function exited(c: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (c.exitCode !== null ? resolve(c.exitCode) : c.once('exit', (code) => resolve(code))));
}

describe('ConsoleIo', () => {
  it('copies 10 MB of terminal output to the stdout FIFO whole, then the client sees EOF', async () => {
    const out = fifo('big-stdout');
    const reader = clientReader(out);
    const io = ConsoleIo.open({ stdin: '', stdout: out, stderr: '', terminal: true });
    const p = ptyProcess(`head -c ${10 * 1024 * 1024} /dev/zero | tr '\\0' x`);
    await io.attach(p.start);
    expect(await exited(await p.child)).toBe(0);
    io.processExited();
    const got = await reader;
    expect(got.length).toBe(10 * 1024 * 1024);
    expect(got.every((b) => b === 0x78)).toBe(true);
    io.close();
    expect(io.errors).toEqual([]);
  });

  it('writes stdin to the terminal, sets its window size, and keeps stdin open until CloseIO', async () => {
    const out = fifo('stdout');
    const inp = fifo('stdin');
    const reader = clientReader(out);
    const io = ConsoleIo.open({ stdin: inp, stdout: out, stderr: '', terminal: true });
    // The process reports the size it sees after reading the first line, then waits for EOF.
    const p = ptyProcess('stty -echo; read line; echo "size $(stty size) line $line"; cat; echo eof-seen');
    await io.attach(p.start);
    io.resize({ width: 101, height: 33 });
    const writer = fs.openSync(inp, fs.constants.O_WRONLY);
    fs.writeSync(writer, 'hello\n');
    fs.closeSync(writer);
    // The client's writer is gone, but the shim still holds stdin: the process keeps running.
    const child = await p.child;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(child.exitCode).toBeNull();
    // CloseIO: the FIFO ends, the console is hung up, the shell goes away.
    io.closeStdin();
    await exited(child);
    io.processExited();
    const text = (await reader).toString();
    expect(text).toContain('size 33 101 line hello');
    io.close();
  });

  it('appends to a regular file given as stdout', async () => {
    const file = path.join(tmp.dir, 'out.log');
    fs.writeFileSync(file, 'before\n');
    const io = ConsoleIo.open({ stdin: '', stdout: file, stderr: '', terminal: true });
    const p = ptyProcess('echo after');
    await io.attach(p.start);
    await exited(await p.child);
    io.processExited();
    await new Promise((resolve) => setTimeout(resolve, 500));
    io.close();
    expect(fs.readFileSync(file, 'utf8')).toBe('before\nafter\r\n');
  });

  it('a failed runtime call leaves no socket dir and no open fd behind', async () => {
    const out = fifo('stdout-fail');
    const before = fs.readdirSync('/proc/self/fd').length;
    const io = ConsoleIo.open({ stdin: '', stdout: out, stderr: '', terminal: true });
    let socketPath = '';
    await expect(
      io.attach(async (socket) => {
        socketPath = socket;
        throw new Error('runc create failed: boom');
      }),
    ).rejects.toThrow('runc create failed: boom');
    expect(fs.existsSync(path.dirname(socketPath))).toBe(false);
    io.close();
    expect(fs.readdirSync('/proc/self/fd').length).toBe(before);
  });

  it('refuses a separate stderr and non-FIFO schemes with a terminal', () => {
    expect(() => ConsoleIo.open({ stdin: '', stdout: '/a', stderr: '/b', terminal: true })).toThrow(StdioError);
    expect(() => ConsoleIo.open({ stdin: '', stdout: 'syslog:///x', stderr: '', terminal: true })).toThrow(/syslog:\/\/ is not supported with a terminal/);
  });
});
