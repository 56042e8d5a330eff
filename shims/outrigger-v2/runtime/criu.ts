/**
 * Is CRIU there for checkpoint/restore? runc runs `criu` from its PATH, or the binary named by
 * its global --criu (our CriuPath option). Without it runc fails deep inside with an exec
 * error; we look first, so the caller gets a FailedPrecondition that says what is missing.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { RuntimeOptions } from './saved-options.ts';

export class CriuMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CriuMissingError';
  }
}

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The CRIU binary runc will use, or CriuMissingError naming where we looked. */
export function findCriu(options: Pick<RuntimeOptions, 'criuPath'>, searchPath: string | undefined = process.env.PATH): string {
  if (options.criuPath) {
    if (isExecutableFile(options.criuPath)) return options.criuPath;
    throw new CriuMissingError(`criu not found: CriuPath ${options.criuPath} is not an executable file (checkpoint/restore needs CRIU)`);
  }
  const dirs = (searchPath ?? '').split(':').filter((d) => d !== '');
  for (const dir of dirs) {
    const file = path.join(dir, 'criu');
    if (isExecutableFile(file)) return file;
  }
  throw new CriuMissingError(`criu not found in PATH (${dirs.join(':') || 'empty'}); install CRIU or set CriuPath in the runtime options to checkpoint or restore`);
}
