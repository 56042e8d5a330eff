/**
 * buildEstargz for a tar held in memory (test images, scripts): the builder reads by position,
 * so the tar goes through a private temp file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildEstargz, type BuildOptions, type BuildReport } from './build.ts';

export async function buildEstargzBuffer(tar: Buffer, opts: BuildOptions = {}): Promise<{ blob: Buffer; report: BuildReport }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-estargz-'));
  const file = path.join(dir, 'layer.tar');
  try {
    fs.writeFileSync(file, tar);
    const fd = fs.openSync(file, 'r');
    const parts: Buffer[] = [];
    try {
      const report = await buildEstargz(fd, tar.length, async (chunk) => {
        parts.push(Buffer.from(chunk));
      }, opts);
      return { blob: Buffer.concat(parts), report };
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
