/**
 * A new pseudo-terminal pair (posix_openpt, grantpt, unlockpt, ptsname_r): what runc makes
 * for a terminal container, made here for tests and self-checks of the pty code.
 */
import fs from 'node:fs';
import { check, libc, SysCallError } from './libc.ts';

const O_RDWR = 0o2;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000;

export interface Pty {
  /** Master side, close-on-exec, owned by the caller. */
  readonly masterFd: number;
  /** Path of the slave side, e.g. /dev/pts/4 (open it to get the terminal end). */
  readonly slavePath: string;
}

export function openPty(): Pty {
  const fns = libc();
  const masterFd = check(fns.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), 'posix_openpt', 'O_RDWR|O_NOCTTY|O_CLOEXEC');
  try {
    check(fns.grantpt(masterFd), 'grantpt', `fd ${masterFd}`);
    check(fns.unlockpt(masterFd), 'unlockpt', `fd ${masterFd}`);
    const name = Buffer.alloc(128);
    // ptsname_r returns the error number itself instead of -1.
    const err = fns.ptsname_r(masterFd, name, BigInt(name.length));
    if (err !== 0) throw new SysCallError('ptsname_r', `fd ${masterFd}`, err);
    return { masterFd, slavePath: name.subarray(0, name.indexOf(0)).toString('utf8') };
  } catch (err) {
    fs.closeSync(masterFd);
    throw err;
  }
}
