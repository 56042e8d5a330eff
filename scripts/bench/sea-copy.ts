/**
 * A private copy of the SEA with the link names a suite runs it by: a rebuild of dist/ in the
 * middle of a benchmark (another build, another test) then cannot change or remove what is
 * being measured. Copying once per directory; later calls find it in place.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SEA } from './paths.ts';

export function copySea(dir: string, links: readonly string[], suite: string): void {
  const copy = path.join(dir, 'outrigger');
  if (fs.existsSync(copy)) return;
  if (!fs.existsSync(SEA)) throw new Error(`bench ${suite}: ${SEA} is missing; run npm run build first`);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(SEA, copy);
  fs.chmodSync(copy, 0o755);
  for (const link of links) fs.symlinkSync('outrigger', path.join(dir, link));
}
