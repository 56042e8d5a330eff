/**
 * src/api/gen is generated, never edited: running the same `buf generate` (buf.gen.yaml, local
 * protoc-gen-es) into a scratch directory must reproduce the committed tree byte for byte.
 * CI runs this, so a .proto change without `npm run gen` fails here.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '..');
const binDir = path.join(repoRoot, 'node_modules/.bin');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-gen-'));

function listFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe('npm run gen', () => {
  it('reproduces the committed src/api/gen exactly', async () => {
    await promisify(execFile)(path.join(binDir, 'buf'), ['generate', '-o', scratch], {
      cwd: repoRoot,
      env: { ...process.env, PATH: `${binDir}:${process.env.PATH ?? ''}` },
    });
    const fresh = path.join(scratch, 'src/api/gen');
    const committed = path.join(repoRoot, 'src/api/gen');
    const files = listFiles(fresh);
    expect(files.length).toBeGreaterThan(10);
    expect(listFiles(committed)).toEqual(files);
    for (const f of files) {
      expect(fs.readFileSync(path.join(committed, f), 'utf8'), `src/api/gen/${f} differs from a fresh npm run gen`).toBe(
        fs.readFileSync(path.join(fresh, f), 'utf8'),
      );
    }
  });

  it('is wired as the package.json "gen" script', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.gen).toBe('buf generate');
  });
});
