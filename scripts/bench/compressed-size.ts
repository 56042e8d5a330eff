/**
 * Compressed size of a file for the shipping comparison. zstd -19 of the 117 MB SEA takes about a
 * minute on one core, so results are cached in .cache/bench/ by the file's SHA-256.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './paths.ts';

export interface Compressor {
  /** e.g. "zstd -19"; also the cache key. */
  name: string;
  argv: readonly string[];
}

export const GZIP_9: Compressor = { name: 'gzip -9', argv: ['gzip', '-9', '-c'] };
// One thread: multi-threaded zstd splits the input into jobs and the size depends on the thread count.
export const ZSTD_19: Compressor = { name: 'zstd -19', argv: ['zstd', '-19', '-T1', '-q', '-c'] };

const cacheFile = path.join(ROOT, '.cache/bench/compressed-sizes.json');

function readCache(): Record<string, number> {
  try {
    return JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as Record<string, number>;
  } catch {
    return {};
  }
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function compressedBytes(file: string, c: Compressor): Promise<number> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = c.argv;
    const child = spawn(cmd!, [...args, file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let bytes = 0;
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (err) => reject(new Error(`bench: ${c.name} of ${file}: ${err.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(bytes) : reject(new Error(`bench: ${c.name} of ${file} exited ${code}: ${stderr.trim()}`))));
  });
}

/** Size after compression; undefined if it is not cached and `computeIfMissing` is false. */
export async function compressedSize(file: string, c: Compressor, computeIfMissing: boolean): Promise<number | undefined> {
  const key = `${await sha256(file)}:${c.name}`;
  const cache = readCache();
  if (cache[key] !== undefined) return cache[key];
  if (!computeIfMissing) return undefined;
  const bytes = await compressedBytes(file, c);
  fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
  fs.writeFileSync(cacheFile, `${JSON.stringify({ ...readCache(), [key]: bytes }, null, 2)}\n`);
  return bytes;
}
