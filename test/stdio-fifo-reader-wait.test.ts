/**
 * Create waits for the client's reader on output FIFOs (src/stdio/fifo-reader-wait.ts), the way
 * the Go shim's blocking open does, so a client whose reader opens late (ctr's open goroutine on
 * a loaded node) is inside its open before the process runs. The client here is a separate
 * `cat` process: its open(2) blocks until a writer appears, as the Go client's does.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { useFifoDir } from './support/fifo-dir.ts';
import { waitForFifoReaders } from '../src/stdio/fifo-reader-wait.ts';
import { openProcessIo } from '../src/stdio/open-process-io.ts';

const tmp = useFifoDir('fifo-reader-wait-');
const fifo = tmp.fifo;

/** A reader in another process with a blocking open, started after `delayMs`; resolves to all it read. */
function lateReader(p: string, delayMs: number): { output: Promise<string>; exited: () => boolean } {
  let done = false;
  const child = spawn('sh', ['-c', `sleep ${delayMs / 1000}; exec cat "$0"`, p], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  const output = new Promise<string>((resolve) =>
    child.once('close', () => {
      done = true;
      resolve(text);
    }),
  );
  return { output, exited: () => done };
}

describe('waitForFifoReaders', () => {
  it('returns at the deadline naming the FIFO nobody reads', async () => {
    const p = fifo('nobody');
    const readers = await waitForFifoReaders([p], 60);
    expect(readers.missing).toEqual([p]);
    readers.release();
  });

  it('does not wait for regular files, missing paths or empty strings', async () => {
    const file = path.join(tmp.dir, 'log.txt');
    fs.writeFileSync(file, '');
    const readers = await waitForFifoReaders([file, path.join(tmp.dir, 'absent'), ''], 5_000);
    expect(readers.missing).toEqual([]);
    readers.release();
  });

  it('waits for a reader that opens late, then the output reaches it and EOF comes only with the process exit', async () => {
    const p = fifo('stdout');
    const reader = lateReader(p, 150);
    const readers = await waitForFifoReaders([p, p], 5_000);
    expect(readers.missing).toEqual([]);
    // The reader is in the FIFO now. The probe writer is what let its open return: until the
    // shim's own ends are open, it must stay, or the reader would see EOF at once.
    const io = await openProcessIo({ stdin: '', stdout: p, stderr: p, terminal: false });
    readers.release();
    await sleep(100);
    expect(reader.exited(), 'the client saw EOF before the process even ran').toBe(false);
    const child = spawn('sh', ['-c', 'echo out; echo err >&2; exit 3'], { stdio: ['ignore', io.fds[1], io.fds[2]] });
    io.afterStart();
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    io.processExited();
    expect(code).toBe(3);
    expect((await reader.output).split('\n').filter(Boolean).sort()).toEqual(['err', 'out']);
    io.close();
  });

  it('openProcessIo with FIFOs nobody reads still opens them after the wait (output kept for a later reader)', async () => {
    const p = fifo('unread');
    const warnings: { obj: object; msg: string }[] = [];
    const io = await openProcessIo({ stdin: '', stdout: p, stderr: '', terminal: false }, undefined, {
      containerId: 'c1',
      namespace: 'ns',
      bundle: tmp.dir,
      log: { warn: (obj, msg) => warnings.push({ obj, msg }), info: () => undefined, debug: () => undefined },
    });
    expect(warnings).toEqual([{ obj: expect.objectContaining({ container: 'c1', fifos: [p] }), msg: expect.stringContaining('no reader') }]);
    const child = spawn('sh', ['-c', 'echo kept'], { stdio: ['ignore', io.fds[1], 'ignore'] });
    io.afterStart();
    await new Promise((resolve) => child.once('exit', resolve));
    io.processExited();
    // What a delete now would drop, for the shim's warning.
    expect(io.unreadOutputBytes?.()).toBe('kept\n'.length);
    // A reader that comes after the exit still gets the output (the shim's end holds it).
    const late = lateReader(p, 0);
    expect(await late.output).toBe('kept\n');
    expect(io.unreadOutputBytes?.()).toBe(0);
    io.close();
  });
});

describe('FifoIo.outputRead: the exit waits for the client to read', () => {
  it('resolves once a reader that opened early but reads late has taken the output, before the deadline', async () => {
    const p = fifo('slow-client');
    // The client's open has returned (kernel-wise) but nothing reads yet: ctr's goroutine, late.
    const clientFd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const io = await openProcessIo({ stdin: '', stdout: p, stderr: '', terminal: false });
    const child = spawn('sh', ['-c', 'echo late-read; exit 9'], { stdio: ['ignore', io.fds[1], 'ignore'] });
    io.afterStart();
    await new Promise((resolve) => child.once('exit', resolve));
    io.processExited();
    let settled = false;
    const read = io.outputRead!(30_000).then(() => (settled = true));
    await sleep(200);
    expect(settled, 'reported the exit while the output was still unread').toBe(false);
    const buf = Buffer.alloc(64);
    const n = fs.readSync(clientFd, buf);
    expect(buf.subarray(0, n).toString()).toBe('late-read\n');
    await read;
    expect(settled).toBe(true);
    fs.closeSync(clientFd);
    io.close();
  });

  it('gives up at the deadline when nobody reads, and at once when nothing was written', async () => {
    const p = fifo('no-client');
    const clientFd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const io = await openProcessIo({ stdin: '', stdout: p, stderr: '', terminal: false });
    const silentPath = fifo('silent');
    const silentClientFd = fs.openSync(silentPath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const silent = await openProcessIo({ stdin: '', stdout: silentPath, stderr: '', terminal: false });
    const child = spawn('sh', ['-c', 'echo unread'], { stdio: ['ignore', io.fds[1], 'ignore'] });
    io.afterStart();
    silent.afterStart();
    await new Promise((resolve) => child.once('exit', resolve));
    io.processExited();
    silent.processExited();
    await io.outputRead!(50);
    expect(io.unreadOutputBytes!()).toBe('unread\n'.length);
    await silent.outputRead!(30_000); // nothing written: no wait
    fs.closeSync(clientFd);
    fs.closeSync(silentClientFd);
    io.close();
    silent.close();
  });
});
