/**
 * Runs ctr the way a user at a terminal does (`ctr run -t`, `ctr t exec -t`): on a real pty
 * made here, so ctr finds a console on its stdin, puts it in raw mode, sends its size
 * (ResizePty) and forwards SIGWINCH. The test holds the master: it reads everything ctr
 * prints and types into it.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import tty from 'node:tty';
import { SYSTEM_CTR } from '../../scripts/dev-containerd/private-containerd.ts';
import { openPty } from '../../src/sys/pty.ts';
import { setWindowSize } from '../../src/sys/winsize.ts';
import type { PrivateContainerd } from './harness.ts';
import { waitFor } from './shim-support.ts';

export interface PtySession {
  /** Everything ctr wrote to its terminal so far. */
  output(): Buffer;
  /** Types into ctr's terminal. */
  write(text: string): void;
  /** Waits until the output matches. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<void>;
  /** Changes the terminal size and tells ctr (SIGWINCH), as a terminal emulator does. */
  resize(rows: number, cols: number): void;
  /** ctr's exit code, once it exited and its output is read. */
  readonly done: Promise<{ exitCode: number; output: Buffer }>;
}

export function ctrOnPty(ctd: PrivateContainerd, args: readonly string[], size = { rows: 24, cols: 80 }): PtySession {
  const pty = openPty();
  setWindowSize(pty.masterFd, size);
  const slave = fs.openSync(pty.slavePath, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
  // Raw from the start, as ctr itself asks for (it does not always get there before the
  // first output): what the container writes reaches the test unchanged, nothing is echoed.
  execFileSync('stty', ['-F', pty.slavePath, 'raw', '-echo']);
  const [cmd, sub] = args;
  const at = cmd === 'run' ? 1 : cmd === 'tasks' && (sub === 'exec' || sub === 'start') ? 2 : -1;
  const full = at < 0 ? [...args] : [...args.slice(0, at), '--fifo-dir', ctd.fifoDir, ...args.slice(at)];
  const child = spawn(SYSTEM_CTR, ['--address', ctd.address, '--namespace', ctd.namespace, ...full], { stdio: [slave, slave, slave], detached: true });
  fs.closeSync(slave);
  const master = new tty.ReadStream(pty.masterFd);
  const chunks: Buffer[] = [];
  master.on('data', (d: Buffer) => chunks.push(d));
  const outputEnded = new Promise<void>((resolve) => {
    master.on('error', () => resolve()); // EIO once ctr (the last slave holder) is gone
    master.on('end', () => resolve());
  });
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? 9 : 0))));
  const output = () => Buffer.concat(chunks);
  const done = (async () => {
    const exitCode = await exited;
    await outputEnded;
    master.destroy();
    return { exitCode, output: output() };
  })();
  return {
    output,
    write: (text) => void master.write(text),
    waitForOutput: async (re, timeoutMs = 20_000) => {
      try {
        await waitFor(`${re} in the terminal output`, () => (re.test(output().toString()) ? true : undefined), timeoutMs);
      } catch (err) {
        (err as Error).message += `; output so far: ${JSON.stringify(output().toString().slice(-2000))}`;
        throw err;
      }
    },
    resize: (rows, cols) => {
      setWindowSize(pty.masterFd, { rows, cols });
      child.kill('SIGWINCH');
    },
    done,
  };
}
