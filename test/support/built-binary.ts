/** Locates the SEA built by `npm run build`; tests of the binary fail loudly when it is absent. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const repoRoot = path.resolve(import.meta.dirname, '../..');
export const distBin = path.join(repoRoot, 'dist/bin');

export function builtBinary(name = 'outrigger'): string {
  const file = path.join(distBin, name);
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is missing: run \`npm run build\` first (npm test does)`);
  }
  return file;
}

/**
 * A private copy of the built SEA under link name `name`, for tests that spawn it many times:
 * other work rebuilds dist/ at any moment (the build removes dist/bin first). A hard link pins
 * the inode; `dispose` removes the copy.
 */
export function pinnedBinary(name: string): { path: string; dispose: () => void } {
  // A build running right now removes dist/bin for a few seconds: wait for it (up to 60 s).
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 120 && !fs.existsSync(path.join(distBin, 'outrigger')); i++) Atomics.wait(pause, 0, 0, 500);
  const source = fs.realpathSync(builtBinary('outrigger'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinned-bin-'));
  const target = path.join(dir, 'outrigger');
  try {
    fs.linkSync(source, target);
  } catch {
    fs.copyFileSync(source, target);
    fs.chmodSync(target, 0o755);
  }
  if (name !== 'outrigger') fs.symlinkSync('outrigger', path.join(dir, name));
  return { path: path.join(dir, name), dispose: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
