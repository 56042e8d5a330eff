/** Locates the SEA built by `npm run build`; tests of the binary fail loudly when it is absent. */
import fs from 'node:fs';
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
