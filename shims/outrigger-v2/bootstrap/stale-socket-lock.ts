/**
 * Removing a stale shim socket safely when several daemons race for one path (twenty `start`s
 * of one node group at once, after the last shim crashed). Without care, daemon B removes the
 * stale file and binds, and daemon C, which had also found the path dead a moment earlier,
 * removes B's fresh socket and binds its own: two shims, one unreachable. So the remove-and-
 * rebind step is done under `<socket>.lock`, created with O_EXCL and holding the owner's pid;
 * under the lock the path is probed again before anything is removed. A lock whose owner died
 * (its pid is gone) or that is older than `staleAfterMs` is broken.
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface SocketLock {
  release(): void;
}

function ownerAlive(lockFile: string): boolean {
  try {
    const pid = Number(fs.readFileSync(lockFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the pid exists and belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function lockSocket(socket: string, opts: { timeoutMs?: number; staleAfterMs?: number } = {}): Promise<SocketLock> {
  const lockFile = `${socket}.lock`;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const staleAfterMs = opts.staleAfterMs ?? 5_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = fs.openSync(lockFile, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600);
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return {
        release: () => fs.rmSync(lockFile, { force: true }),
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`lock ${lockFile}: ${String(err)}`, { cause: err });
    }
    let age = 0;
    try {
      age = Date.now() - fs.statSync(lockFile).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    // A lock file just created may not hold its pid yet: judge the owner only after a moment.
    if ((age > 200 && !ownerAlive(lockFile)) || age > staleAfterMs) {
      fs.rmSync(lockFile, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`lock ${lockFile}: still held after ${timeoutMs} ms`);
    await sleep(10);
  }
}
