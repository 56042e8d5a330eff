/**
 * FIFO stdio handed straight to a process (src/stdio/fifo-io.ts), with a real `cat` standing in
 * for the container process and the client side opened the way ctr opens it (non-blocking
 * reader first, writer once a reader exists). What matters: output reaches the client's
 * reader, end-of-input reaches the process only when the client's writer is gone and the
 * shim has let go, and the client's reader sees EOF once the process exited.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useFifoDir } from './support/fifo-dir.ts';
import { ConsoleIo } from '../src/stdio/console-io.ts';
import { FifoIo } from '../src/stdio/fifo-io.ts';
import { NullIo } from '../src/stdio/null-io.ts';
import { openProcessIo, stdioScheme } from '../src/stdio/open-process-io.ts';
import { StdioError } from '../src/stdio/process-io.ts';

const tmp = useFifoDir('stdio-fifo-');
const fifo = tmp.fifo;

/** The client's reader: opened non-blocking before the shim opens its end, read to EOF. */
function clientReader(p: string): Promise<string> {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const sock = new net.Socket({ fd, readable: true, writable: false });
  let text = '';
  sock.setEncoding('utf8').on('data', (d: string) => (text += d));
  return new Promise((resolve) => sock.once('end', () => resolve(text)));
}

function clientWrite(p: string, data: string): void {
  const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  fs.writeSync(fd, data);
  fs.closeSync(fd);
}

function run(io: FifoIo, cmd: string, args: string[]): Promise<number | null> {
  const child = spawn(cmd, args, { stdio: [io.fds[0], io.fds[1], io.fds[2]] });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('FifoIo', () => {
  it('stdin to the process, stdout and stderr to the client, EOF to both in the right order', async () => {
    const [stdin, stdout, stderr] = [fifo('c-stdin'), fifo('c-stdout'), fifo('c-stderr')];
    const out = clientReader(stdout);
    const err = clientReader(stderr);
    const io = FifoIo.open({ stdin, stdout, stderr, terminal: false });
    clientWrite(stdin, 'hello\n');
    const exited = run(io, 'sh', ['-c', 'cat; echo done >&2']);
    io.afterStart();
    expect(await exited).toBe(0);
    io.processExited();
    expect(await out).toBe('hello\n');
    expect(await err).toBe('done\n');
    io.close();
  });

  it('output of a process that exited before the client opened its reader is kept until it is read', async () => {
    // ctr opens its stdout reader asynchronously; on a loaded node a short-lived container can
    // exit first. The kernel drops a FIFO's bytes when its last fd closes, so the shim must not.
    const stdout = fifo('late-stdout');
    const io = FifoIo.open({ stdin: '', stdout, stderr: '', terminal: false });
    expect(await run(io, 'sh', ['-c', 'echo late-reader; exit 91'])).toBe(91);
    io.afterStart();
    io.processExited();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(await clientReader(stdout)).toBe('late-reader\n');
    io.close();
  });

  it('close() (Delete) releases output nobody came to read', () => {
    const stdout = fifo('unread-stdout');
    const io = FifoIo.open({ stdin: '', stdout, stderr: '', terminal: false });
    fs.writeSync(io.fds[1] as number, 'never read\n');
    io.afterStart();
    io.processExited();
    io.close();
    // Nothing holds the FIFO now: a reader opened afterwards sees no writer and no data.
    const fd = fs.openSync(stdout, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    expect(fs.readSync(fd, Buffer.alloc(64))).toBe(0);
    fs.closeSync(fd);
  });

  it('a process that reads before the client wrote is not told EOF while the shim holds stdin', async () => {
    const [stdin, stdout] = [fifo('d-stdin'), fifo('d-stdout')];
    const out = clientReader(stdout);
    const io = FifoIo.open({ stdin, stdout, stderr: '', terminal: false });
    const exited = run(io, 'cat', []);
    await new Promise((r) => setTimeout(r, 100)); // cat is blocked reading, not at EOF
    clientWrite(stdin, 'late\n');
    io.afterStart();
    expect(await exited).toBe(0);
    io.processExited();
    expect(await out).toBe('late\n');
  });

  it('stdout == stderr share one fd; a regular file is appended to, never created', async () => {
    const file = path.join(tmp.dir, 'out.log');
    fs.writeFileSync(file, 'before\n');
    const io = FifoIo.open({ stdin: '', stdout: file, stderr: file, terminal: false });
    expect(io.fds[1]).toBe(io.fds[2]);
    expect(await run(io, 'sh', ['-c', 'echo a; echo b >&2'])).toBe(0);
    io.close();
    expect(fs.readFileSync(file, 'utf8')).toBe('before\na\nb\n');
    expect(() => FifoIo.open({ stdin: '', stdout: path.join(tmp.dir, 'missing'), stderr: '', terminal: false })).toThrow(StdioError);
  });
});

describe('openProcessIo', () => {
  it('all empty is null IO; plain paths and fifo:// are FIFOs; other schemes are refused by name', async () => {
    expect(await openProcessIo({ stdin: '', stdout: '', stderr: '', terminal: false })).toBeInstanceOf(NullIo);
    expect(stdioScheme('/run/x/c-stdout')).toBe('fifo');
    expect(stdioScheme('fifo:///run/x')).toBe('fifo');
    expect(stdioScheme('binary:///usr/bin/logger?x=y')).toBe('binary');
    await expect(openProcessIo({ stdin: '', stdout: 'syslog:///dev/log', stderr: '', terminal: false })).rejects.toThrow('unknown STDIO scheme syslog');
    expect(await openProcessIo({ stdin: '', stdout: '/x', stderr: '', terminal: true })).toBeInstanceOf(ConsoleIo);
  });
});

describe('IoUid/IoGid', () => {
  it('hands the process FIFOs owned by the io user, and leaves regular files alone', () => {
    const [stdin, stdout] = [fifo('o-stdin'), fifo('o-stdout')];
    const file = path.join(tmp.dir, 'err.log');
    fs.writeFileSync(file, '');
    const reader = fs.openSync(stdout, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const io = FifoIo.open({ stdin, stdout, stderr: file, terminal: false }, { uid: 1234, gid: 4321 });
    try {
      for (const p of [stdin, stdout]) expect({ uid: fs.statSync(p).uid, gid: fs.statSync(p).gid }).toEqual({ uid: 1234, gid: 4321 });
      expect(fs.statSync(file).uid).toBe(0);
    } finally {
      io.close();
      fs.closeSync(reader);
    }
  });
});

