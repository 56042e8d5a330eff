/**
 * `outrigger estargz unpack`: the stream processor around unpack.ts. stdin → stdout, stderr is
 * containerd's error text (read only when we exit non-zero, ../shared/reference/imgcrypt.md §1).
 *
 * The TOC digest comes from --toc-digest or $OUTRIGGER_ESTARGZ_TOC_DIGEST (the flag wins).
 * containerd gives a processor no layer annotations, and a [stream_processors] entry's env is
 * the same for every layer, so in containerd this is for a dedicated pipeline; from the command
 * line it pins one layer.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { growPipe } from '../zstd/pipe-size.ts';
import { TOC_DIGEST_ENV } from './command.ts';
import { UnpackError, unpackLayer, type UnpackResult } from './unpack.ts';

export interface RawUnpackOptions {
  tocDigest?: string;
  logFile?: string;
}

const READ_SIZE = 1 << 20;
/** Staging buffer for small output chunks (see StdoutWriter). */
const STAGE_BYTES = 256 * 1024;

function isEagain(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'EAGAIN';
}

/**
 * Reads fd 0 with read(2) in the thread pool; if the fd turns out non-blocking (EAGAIN), the
 * rest comes through process.stdin, which polls properly.
 */
async function* readStdin(): AsyncGenerator<Buffer> {
  // One buffer for every read: unpackLayer consumes a chunk before asking for the next.
  const buf = Buffer.allocUnsafe(READ_SIZE);
  for (;;) {
    let n: number;
    try {
      n = await new Promise<number>((resolve, reject) => fs.read(0, buf, 0, READ_SIZE, null, (err, got) => (err ? reject(err) : resolve(got))));
    } catch (err) {
      if (!isEagain(err)) throw err;
      for await (const chunk of process.stdin) yield chunk as Buffer;
      return;
    }
    if (n === 0) return;
    yield buf.subarray(0, n);
  }
}

/**
 * Writes to fd 1 with blocking write(2) calls: no garbage, and the pipe's own backpressure paces
 * decoding. Small chunks (tar headers, small files: eStargz makes a gzip member per file) are
 * gathered into one staging buffer first, so a layer of small files does not cost a system call
 * each; large chunks go straight from the decoder's buffer. If fd 1 is non-blocking (EAGAIN), the
 * rest goes through process.stdout, which polls properly, as copies.
 */
class StdoutWriter {
  private useStream = false;
  private draining: Promise<void> | undefined;
  private readonly stage = Buffer.allocUnsafe(STAGE_BYTES);
  private staged = 0;

  write(chunk: Buffer): Promise<void> | undefined {
    if (chunk.length < STAGE_BYTES / 4) {
      if (this.staged + chunk.length > STAGE_BYTES) {
        const wait = this.writeOut(this.stage.subarray(0, this.staged));
        this.staged = 0;
        chunk.copy(this.stage, 0);
        this.staged = chunk.length;
        return wait;
      }
      chunk.copy(this.stage, this.staged);
      this.staged += chunk.length;
      return undefined;
    }
    const first = this.flushStage();
    const second = this.writeOut(chunk);
    return first && second ? Promise.all([first, second]).then(() => undefined) : (first ?? second);
  }

  private flushStage(): Promise<void> | undefined {
    if (this.staged === 0) return undefined;
    const wait = this.writeOut(this.stage.subarray(0, this.staged));
    this.staged = 0;
    return wait;
  }

  private writeOut(chunk: Buffer): Promise<void> | undefined {
    let offset = 0;
    while (!this.useStream && offset < chunk.length) {
      try {
        offset += fs.writeSync(1, chunk, offset, chunk.length - offset);
      } catch (err) {
        if (!isEagain(err)) throw err;
        this.useStream = true;
      }
    }
    if (offset >= chunk.length) return undefined;
    const ok = process.stdout.write(Buffer.from(chunk.subarray(offset)));
    if (ok) return undefined;
    // One 'drain' wait shared by every write until it fires.
    this.draining ??= new Promise((resolve) =>
      process.stdout.once('drain', () => {
        this.draining = undefined;
        resolve();
      }),
    );
    return this.draining;
  }

  async flush(): Promise<void> {
    await this.flushStage();
    if (!this.useStream) return;
    await new Promise<void>((resolve, reject) => process.stdout.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
  }
}

/**
 * After a failure, keeps our stdout open briefly past our exit through a `sleep` that inherits
 * only fd 1: containerd reads stdout to EOF and asks for the processor's error without waiting
 * for the exit (containerd#6914), so EOF arriving after the exit lets our stderr become the
 * pull's error. Best effort: the cut stream fails the diff_id check anyway.
 */
function lingerStdout(): void {
  try {
    const child = spawn('sleep', ['0.5'], { stdio: ['ignore', 1, 'ignore'], detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // no sleep binary: see above
  }
}

function logLine(file: string | undefined, fields: Record<string, string | number | undefined>): void {
  if (file === undefined) return;
  const text = Object.entries(fields)
    .filter((e): e is [string, string | number] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'number' || /^[\w./:+-]*$/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ');
  try {
    fs.appendFileSync(file, `${new Date().toISOString()} outrigger-estargz pid=${process.pid} ${text}\n`, { mode: 0o640 });
  } catch {
    // The log is for operators; a full disk must not fail the pull.
  }
}

export function parseTocDigest(value: string | undefined, source: string): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^sha256:[0-9a-f]{64}$/.test(value)) throw new CliError(`${source}: ${JSON.stringify(value)} is not a sha256:<64 hex> digest`, ExitCode.usage);
  return value;
}

export async function runUnpack(raw: RawUnpackOptions): Promise<void> {
  const tocDigest = parseTocDigest(raw.tocDigest, '--toc-digest') ?? parseTocDigest(process.env[TOC_DIGEST_ENV], `$${TOC_DIGEST_ENV}`);
  const mediaType = process.env.STREAM_PROCESSOR_MEDIATYPE;
  // 1 MiB pipe buffers: a 64 KiB pipe makes every 512 KiB output chunk wait for the reader 8 times.
  growPipe(0, 1 << 20);
  growPipe(1, 1 << 20);
  const out = new StdoutWriter();
  const started = performance.now();
  let result: UnpackResult;
  try {
    result = await unpackLayer(readStdin(), (chunk) => out.write(chunk), { tocDigest });
    await out.flush();
  } catch (err) {
    lingerStdout();
    const message = err instanceof Error ? err.message : String(err);
    logLine(raw.logFile, { media: mediaType, result: 'error', offset: err instanceof UnpackError ? err.offset : undefined, error: message });
    throw new CliError(`estargz unpack: ${mediaType ? `layer ${mediaType}: ` : ''}${message}; the tar output was cut short`, ExitCode.failure, { cause: err });
  }
  logLine(raw.logFile, {
    media: mediaType,
    result: 'ok',
    format: result.format,
    in: result.inputBytes,
    out: result.outputBytes,
    members: result.members,
    toc: result.tocDigest,
    chunks: result.verified?.chunkDigestsChecked,
    covered: result.verified?.chunksCoveredByFileDigest,
    ms: Math.round(performance.now() - started),
  });
}
