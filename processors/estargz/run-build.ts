/**
 * `outrigger estargz build`: option checks, input/output plumbing and the JSON report around
 * build.ts.
 */
import fs from 'node:fs';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { BuildError, buildEstargz, type BuildReport } from './build.ts';
import { openTarInput } from './layer-input.ts';
import { TarFormatError } from '../../src/tar/header.ts';
import { DEFAULT_CHUNK_SIZE } from './toc.ts';

export interface RawBuildOptions {
  output?: string;
  report?: string;
  chunkSize?: string;
  level?: string;
  prioritizedFiles?: string;
  progress?: boolean;
  zstdchunked?: boolean;
}

function positiveInt(text: string | undefined, flag: string, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new CliError(`${flag} wants a whole number, got ${JSON.stringify(text)}`, ExitCode.usage);
  const n = Number(text);
  if (n > max) throw new CliError(`${flag} ${n} is above the limit ${max}`, ExitCode.usage);
  return n;
}

/** A prioritized-files list: one path per line; blank lines and `#` comments ignored. */
function readPrioritized(file: string): string[] {
  let body: string;
  try {
    body = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`--prioritized-files ${file}: ${(err as Error).message}`, ExitCode.usage);
  }
  return body.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

function writeAll(fd: number, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (offset: number): void => {
      fs.write(fd, chunk, offset, chunk.length - offset, null, (err, n) => {
        if (err) return reject(err);
        if (offset + n < chunk.length) step(offset + n);
        else resolve();
      });
    };
    step(0);
  });
}

class Progress {
  private last = 0;
  private readonly total: number;
  constructor(total: number) {
    this.total = total;
  }
  update(input: number, output: number): void {
    const now = Date.now();
    if (now - this.last < 200) return;
    this.last = now;
    const pct = this.total > 0 ? Math.min(100, Math.floor((100 * input) / this.total)) : 100;
    const bar = '#'.repeat(Math.floor(pct / 4)).padEnd(25, '.');
    process.stderr.write(`\r[${bar}] ${String(pct).padStart(3)}%  ${(output / 1048576).toFixed(1)} MiB out`);
  }
  done(): void {
    process.stderr.write('\r\x1b[K');
  }
}

export async function runBuild(input: string | undefined, raw: RawBuildOptions): Promise<void> {
  const chunkSize = positiveInt(raw.chunkSize, '--chunk-size', DEFAULT_CHUNK_SIZE, 1 << 30) || DEFAULT_CHUNK_SIZE;
  const level = raw.zstdchunked ? positiveInt(raw.level, '--level', 3, 22) : positiveInt(raw.level, '--level', 9, 9);
  if (raw.zstdchunked && level === 0) throw new CliError('--level for zstd is 1-22', ExitCode.usage);
  const prioritizedFiles = raw.prioritizedFiles !== undefined ? readPrioritized(raw.prioritizedFiles) : undefined;
  const toStdout = raw.output === undefined || raw.output === '-';
  if (toStdout && process.stdout.isTTY) throw new CliError('refusing to write a compressed layer to a terminal: use -o FILE or a pipe', ExitCode.usage);

  let tar;
  try {
    tar = await openTarInput(input ?? '-');
  } catch (err) {
    throw new CliError((err as Error).message, ExitCode.failure, { cause: err });
  }
  const outFd = toStdout ? 1 : fs.openSync(raw.output!, 'w', 0o644);
  const progress = raw.progress !== false && process.stderr.isTTY ? new Progress(tar.size) : undefined;
  let report: BuildReport;
  try {
    report = await buildEstargz(tar.fd, tar.size, (chunk) => writeAll(outFd, chunk), {
      chunkSize,
      level,
      compression: raw.zstdchunked ? 'zstdchunked' : 'gzip',
      prioritizedFiles,
      onProgress: progress ? (p) => progress.update(p.inputBytes, p.outputBytes) : undefined,
    });
  } catch (err) {
    if (!toStdout) fs.rmSync(raw.output!, { force: true });
    if (err instanceof BuildError || err instanceof TarFormatError) throw new CliError(`estargz build: ${err.message}`, ExitCode.failure, { cause: err });
    throw err;
  } finally {
    progress?.done();
    tar.close();
    if (!toStdout) fs.closeSync(outFd);
  }
  const json = `${JSON.stringify(report)}\n`;
  if (raw.report !== undefined) fs.writeFileSync(raw.report, json);
  else process.stderr.write(json);
}
