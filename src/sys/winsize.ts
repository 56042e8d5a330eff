/**
 * Terminal window size (ioctl TIOCSWINSZ / TIOCGWINSZ), for the shim's ResizePty on the pty
 * master it got from runc. struct winsize is four unsigned shorts: rows, cols, xpixel, ypixel.
 */
import { assertFd, check, libc } from './libc.ts';

const TIOCGWINSZ = 0x5413n;
const TIOCSWINSZ = 0x5414n;

export interface WindowSize {
  readonly rows: number;
  readonly cols: number;
  /** Pixel sizes; nearly every caller leaves them 0. */
  readonly xPixels?: number;
  readonly yPixels?: number;
}

function u16(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new RangeError(`window size ${what} must be 0-65535, got ${value}`);
  return value;
}

export function setWindowSize(ttyFd: number, size: WindowSize): void {
  assertFd(ttyFd, 'setWindowSize');
  const winsize = Buffer.alloc(8);
  winsize.writeUInt16LE(u16(size.rows, 'rows'), 0);
  winsize.writeUInt16LE(u16(size.cols, 'cols'), 2);
  winsize.writeUInt16LE(u16(size.xPixels ?? 0, 'xPixels'), 4);
  winsize.writeUInt16LE(u16(size.yPixels ?? 0, 'yPixels'), 6);
  check(libc().ioctl(ttyFd, TIOCSWINSZ, winsize), 'ioctl', `fd ${ttyFd}, TIOCSWINSZ, ${size.rows}x${size.cols}`);
}

export function getWindowSize(ttyFd: number): Required<WindowSize> {
  assertFd(ttyFd, 'getWindowSize');
  const winsize = Buffer.alloc(8);
  check(libc().ioctl(ttyFd, TIOCGWINSZ, winsize), 'ioctl', `fd ${ttyFd}, TIOCGWINSZ`);
  return {
    rows: winsize.readUInt16LE(0),
    cols: winsize.readUInt16LE(2),
    xPixels: winsize.readUInt16LE(4),
    yPixels: winsize.readUInt16LE(6),
  };
}
