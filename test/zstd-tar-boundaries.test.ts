/**
 * TarBoundaries against archives written by GNU tar in pax and gnu formats (long names, links,
 * hard links, directories, a sparse file): every offset it reports as a clean end must be one
 * where a tar reader stops without error, and it must find the end of every member.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TarBoundaries } from '../processors/zstd/tar-boundaries.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zstd-tar-boundaries-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function makeTree(): string {
  const root = path.join(dir, 'tree');
  const long = path.join(root, 'd'.repeat(120));
  fs.mkdirSync(long, { recursive: true });
  fs.writeFileSync(path.join(long, 'f'.repeat(150)), 'long name\n');
  fs.writeFileSync(path.join(root, 'data'), Buffer.alloc(70_000, 7));
  fs.symlinkSync('data', path.join(root, 'link'));
  fs.linkSync(path.join(root, 'data'), path.join(root, 'hard'));
  fs.mkdirSync(path.join(root, 'empty'));
  const sparse = path.join(root, 'sparse');
  fs.writeFileSync(sparse, '');
  fs.truncateSync(sparse, 5_000_000);
  fs.appendFileSync(sparse, 'tail');
  return root;
}

function boundaries(archive: Buffer): { points: number[]; lost: boolean } {
  const t = new TarBoundaries();
  const points = new Set<number>();
  for (let i = 0; i < archive.length; i += 512) {
    t.feed(archive.subarray(i, i + 512));
    points.add(t.lastBoundary);
  }
  return { points: [...points].filter((p) => p > 0), lost: t.lost };
}

describe('TarBoundaries', () => {
  const tree = makeTree();
  for (const format of ['pax', 'gnu']) {
    it(`finds clean ends a tar reader accepts, in a GNU tar --format=${format} archive`, () => {
      const archive = execFileSync('tar', [`--format=${format}`, '--sparse', '--sort=name', '-C', path.dirname(tree), '-cf', '-', path.basename(tree)], { maxBuffer: 1 << 26 });
      const members = execFileSync('tar', ['-tf', '-'], { input: archive }).toString().trim().split('\n');
      const found = boundaries(archive);
      expect(found.lost).toBe(false);
      expect(found.points.length).toBeGreaterThanOrEqual(members.length);
      for (const point of found.points) {
        const r = spawnSync('tar', ['-tf', '-'], { input: archive.subarray(0, point) });
        expect(r.status, `clean end at ${point}: ${r.stderr.toString()}`).toBe(0);
      }
      // And a cut inside `data` (70 kB, sorted right after the long-named directory) is not clean.
      const inside = found.points.find((p) => p > 70_000)! - 4096;
      expect(spawnSync('tar', ['-tf', '-'], { input: archive.subarray(0, inside) }).status).not.toBe(0);
    });
  }
});
