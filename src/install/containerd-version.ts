/** Which containerd major a node runs, from `containerd --version`. */
import { execFileSync } from 'node:child_process';
import type { ContainerdMajor } from '../containerd-config/entries.ts';

export interface ContainerdVersion {
  readonly version: string;
  readonly major: ContainerdMajor | undefined;
}

/** Parses e.g. "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1". */
export function parseContainerdVersion(output: string): ContainerdVersion | undefined {
  const m = /\bv?(\d+)\.(\d+)\.(\d+)\S*/.exec(output);
  if (!m) return undefined;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  const major: ContainerdMajor | undefined = maj >= 2 ? '2.x' : maj === 1 && min === 6 ? '1.6' : maj === 1 && min === 7 ? '1.7' : undefined;
  return { version: m[0].replace(/^v/, ''), major };
}

export function majorFromFlag(flag: string): ContainerdMajor {
  if (flag === '1.6' || flag === '1.7' || flag === '2.x') return flag;
  if (/^2(\.\d+)?$/.test(flag)) return '2.x';
  throw new Error(`--containerd-version must be 1.6, 1.7 or 2.x, not '${flag}'`);
}

/** Runs `<binary> --version`; undefined when the binary is missing or says something unexpected. */
export function detectContainerdVersion(binary: string): ContainerdVersion | undefined {
  try {
    return parseContainerdVersion(execFileSync(binary, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 }));
  } catch {
    return undefined;
  }
}
