/**
 * A fresh temp directory for each test (made before it, removed after it) and named FIFOs made
 * in it with mkfifo(1): what the stdio tests hand the shim's stdio code as the client's FIFOs.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';

export interface FifoDir {
  /** The current test's directory. */
  readonly dir: string;
  /** Makes the FIFO `name` in it and returns its path. */
  fifo(name: string): string;
}

export function useFifoDir(prefix: string): FifoDir {
  let dir = '';
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  return {
    get dir() {
      return dir;
    },
    fifo(name: string): string {
      const p = path.join(dir, name);
      execFileSync('mkfifo', [p]);
      return p;
    },
  };
}
