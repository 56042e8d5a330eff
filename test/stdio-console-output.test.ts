/**
 * A terminal's output through file:// and binary:// (openProcessIo with terminal=true): the pty
 * master is copied into the stdout pipe of the same FileIo/BinaryIo the non-tty path uses, so
 * rotation, a real logger, and the fallback for a dead logger all apply to a console. The
 * "runtime" is a real process on a real pty whose master is sent over the console socket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fallbackPathFor } from '../src/stdio/binary-io.ts';
import { isConsoleIo } from '../src/stdio/console-io.ts';
import type { ConsoleIo } from '../src/stdio/console-io.ts';
import { openProcessIo } from '../src/stdio/open-process-io.ts';
import type { StdioContext } from '../src/stdio/open-process-io.ts';
import type { StdioLog } from '../src/stdio/stdio-log.ts';
import { sendFd } from '../src/sys/fd-passing.ts';
import { openPty } from '../src/sys/pty.ts';
import { socketFd } from '../src/sys/socket-fd.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stdio-console-out-'));
  fs.mkdirSync(path.join(dir, 'bundle'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Entry {
  level: string;
  msg: string;
}
function recordingLog(): StdioLog & { entries: Entry[] } {
  const entries: Entry[] = [];
  const at = (level: string) => (_obj: object, msg: string) => void entries.push({ level, msg });
  return { entries, info: at('info'), warn: at('warn'), debug: at('debug') };
}

function context(log: StdioLog): StdioContext {
  return { containerId: 'c1', namespace: 'ns1', bundle: path.join(dir, 'bundle'), log };
}

async function terminalIo(stdout: string, log: StdioLog = recordingLog()): Promise<ConsoleIo> {
  const io = await openProcessIo({ stdin: '', stdout, stderr: stdout, terminal: true }, undefined, context(log));
  if (!isConsoleIo(io)) throw new Error(`terminal request gave ${io.constructor.name}`);
  return io;
}

/** Runs `script` on a pty's slave, the master sent to the console socket as runc does; resolves at its exit. */
async function runOnPty(io: ConsoleIo, script: string): Promise<number | null> {
  let child: ChildProcess | undefined;
  await io.attach(async (socket) => {
    const pty = openPty();
    const slave = fs.openSync(pty.slavePath, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    child = spawn('sh', ['-c', script], { stdio: [slave, slave, slave] });
    fs.closeSync(slave);
    const conn = net.connect(socket);
    await new Promise<void>((resolve, reject) => conn.once('connect', resolve).once('error', reject));
    sendFd(socketFd(conn), pty.masterFd, Buffer.from(pty.slavePath));
    fs.closeSync(pty.masterFd);
    conn.destroy();
  });
  const c = child!;
  const code = await new Promise<number | null>((resolve) => (c.exitCode !== null ? resolve(c.exitCode) : c.once('exit', (x) => resolve(x))));
  io.processExited();
  return code;
}

async function until<T>(what: string, probe: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function logger(name: string, body: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
}

describe('terminal output through file:// and binary://', () => {
  it('file:// with maxSize: the console output is rotated like non-tty output, every line once', async () => {
    const file = path.join(dir, 'logs', 'tty.log');
    const io = await terminalIo(`file://${file}?maxSize=16KiB&maxFiles=100`);
    expect(await runOnPty(io, 'i=1; while [ $i -le 5000 ]; do echo "line $i"; i=$((i+1)); done')).toBe(0);
    await until('the output file to hold the last line', () => (fs.readFileSync(file, 'utf8').includes('line 5000\r\n') ? true : undefined));
    io.close();
    const files = fs.readdirSync(path.dirname(file)).filter((f) => f.startsWith('tty.log'));
    expect(files.length).toBeGreaterThan(1);
    const lines = files.flatMap((f) => fs.readFileSync(path.join(path.dirname(file), f), 'utf8').split('\r\n').filter((l) => l !== ''));
    const numbers = lines.map((l) => Number(/^line (\d+)$/.exec(l)?.[1])).sort((a, b) => a - b);
    expect(numbers).toEqual(Array.from({ length: 5000 }, (_, i) => i + 1));
    expect(io.errors).toEqual([]);
  });

  it('binary://: the console output is the logger\'s fd 3, which ends when the console is done', async () => {
    const out = path.join(dir, 'logger.out');
    const bin = logger('lg', `printf x >&5; exec 5>&-; /bin/cat <&3 > ${out}; echo done >> ${out}.end`);
    const io = await terminalIo(`binary://${bin}?k=v`);
    expect(await runOnPty(io, 'echo from-the-tty')).toBe(0);
    // The logger's cat only finishes when every writer of its fd 3 is gone, i.e. ours too.
    await until('the logger to see the end of its input', () => (fs.existsSync(`${out}.end`) ? true : undefined));
    expect(fs.readFileSync(out, 'utf8')).toBe('from-the-tty\r\n');
    io.close();
  });

  it('binary:// whose logger exits at once: the console output lands in the fallback file, never blocking', async () => {
    const log = recordingLog();
    const bin = logger('quitter', 'exit 1');
    const io = await terminalIo(`binary://${bin}`, log);
    // 512 KiB through the pty, more than any pipe holds: only finishes if the shim drains it.
    expect(await runOnPty(io, 'head -c 524288 /dev/zero | tr "\\0" y; echo')).toBe(0);
    const fallback = fallbackPathFor(path.join(dir, 'bundle'));
    await until('the fallback file to hold the output', () => (fs.existsSync(fallback) && fs.readFileSync(fallback, 'utf8').length >= 524288 ? true : undefined));
    io.close();
    expect(fs.readFileSync(fallback, 'utf8')).toBe(`${'y'.repeat(524288)}\r\n`);
    expect(log.entries.some((e) => e.level === 'warn' && /fallback file/.test(e.msg))).toBe(true);
  });

  it('a terminal with a separate stderr is refused and the logger it started is stopped', async () => {
    const pidFile = path.join(dir, 'logger.pid');
    const bin = logger('lg2', `echo $$ > ${pidFile}; printf x >&5; exec 5>&-; exec /bin/cat <&3 >/dev/null`);
    await expect(openProcessIo({ stdin: '', stdout: `binary://${bin}`, stderr: '/some/fifo', terminal: true }, undefined, context(recordingLog()))).rejects.toThrow(/stderr must be empty with a terminal/);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    await until('the logger to be gone', () => (fs.existsSync(`/proc/${pid}`) ? undefined : true));
  });
});
