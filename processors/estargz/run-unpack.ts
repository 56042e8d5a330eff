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
import { finished, openInput, openStdout } from '../zstd/io.ts';
import { TOC_DIGEST_ENV } from './command.ts';
import { UnpackError, type UnpackResult } from './unpack.ts';
import { unpackAnyLayer } from './unpack-any.ts';

export interface RawUnpackOptions {
  tocDigest?: string;
  logFile?: string;
}

/** Read and write size; also the pipe buffer asked for on stdin/stdout (openInput, openStdout). */
const IO_BYTES = 1 << 20;

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
  // outrigger-zstd's I/O: read(2)/write(2) in the thread pool on reused buffers, alternating
  // reads so the next one runs while this one decodes, 1 MiB pipe buffers (pipe-size.ts).
  const input = openInput('-', IO_BYTES);
  const out = openStdout(IO_BYTES);
  const started = performance.now();
  let result: UnpackResult;
  try {
    result = await unpackAnyLayer(input.chunks, out, { tocDigest, chunkSize: IO_BYTES, ...(input.readInto ? { readInto: input.readInto } : {}) });
    await finished(out);
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
