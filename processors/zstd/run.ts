/**
 * `outrigger zstd`: the zstd CLI's behaviour for the flags it shares (-d, -z, -t, -c, -o, -f, -k,
 * --rm, -q, -v, -#, --long, --memory), and containerd stream-processor mode whenever
 * STREAM_PROCESSOR_MEDIATYPE is set. Loaded lazily by command.ts.
 */
import fs from 'node:fs';
import tty from 'node:tty';
import type { Writable } from 'node:stream';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { compressStream } from './compress.ts';
import { decodeStream, DecodeError, type DecodeResult } from './decode.ts';
import { discard, finished, openInput, openOutputFile, openStdout } from './io.ts';
import { GC_EVERY, planZstd, type RawZstdOptions, type ZstdPlan } from './options.ts';
import { runStreamProcessor } from './stream-processor.ts';

const DECOMPRESSED_NAMES: readonly (readonly [string, string])[] = [
  ['.tzst', '.tar'],
  ['.tgz', '.tar'],
  ['.zst', ''],
  ['.zstd', ''],
  ['.gz', ''],
];

export function decompressedName(input: string): string {
  for (const [suffix, replacement] of DECOMPRESSED_NAMES) {
    if (input.endsWith(suffix) && input.length > suffix.length) return input.slice(0, -suffix.length) + replacement;
  }
  throw new CliError(`${input}: unknown suffix (expected .zst, .zstd, .tzst, .gz or .tgz); use -o FILE or -c`, ExitCode.usage);
}

/** After a failure, do not let a blocked read on stdin keep the process (and containerd's pull) waiting. */
export function exitSoonAfterFailure(): void {
  setTimeout(() => process.exit(process.exitCode ?? ExitCode.failure), 2000).unref();
}

export async function runZstd(operands: readonly string[], raw: RawZstdOptions): Promise<void> {
  const mediaType = process.env.STREAM_PROCESSOR_MEDIATYPE;
  try {
    if (mediaType !== undefined) {
      await runStreamProcessor(mediaType, operands, raw);
      return;
    }
    await runCli(planZstd(operands, raw));
  } catch (err) {
    exitSoonAfterFailure();
    throw err;
  }
}

interface Target {
  readonly stream: Writable;
  /** File to delete if this output fails midway. */
  readonly file?: string;
  /** Shared by several inputs: ended once after the last. */
  readonly shared: boolean;
}

function warn(plan: ZstdPlan, message: string): void {
  if (plan.quiet === 0) process.stderr.write(`outrigger zstd: ${message}\n`);
}

async function runCli(plan: ZstdPlan): Promise<void> {
  const inputs = plan.inputs.length === 0 ? ['-'] : plan.inputs;
  if (plan.ignoredThreads && plan.mode === 'compress') warn(plan, '-T is ignored: node:zlib zstd cannot stream with worker threads (nodejs/node#59899)');
  if (inputs.filter((i) => i === '-').length > 1) throw new CliError("stdin ('-') can be read only once", ExitCode.usage);
  if (inputs.includes('-') && tty.isatty(0) && !plan.force) {
    throw new CliError('stdin is a terminal; refusing to read from it (use -f to force)', ExitCode.usage);
  }
  let shared: Target | undefined;
  if (plan.mode === 'test') shared = { stream: discard(), shared: true };
  else if (plan.outputFile !== undefined) shared = { ...openTarget(plan.outputFile, plan.force, plan.bufferSize), shared: true };
  else if (plan.toStdout) {
    if (plan.mode === 'compress' && tty.isatty(1) && !plan.force) {
      throw new CliError('stdout is a terminal; refusing to write compressed data to it (use -f to force, or -o FILE)', ExitCode.usage);
    }
    shared = { stream: openStdout(plan.bufferSize), shared: true };
  }

  for (const input of inputs) {
    const target: Target = shared ?? perInputTarget(plan, input);
    try {
      await processOne(plan, input, target);
    } catch (err) {
      target.stream.destroy();
      if (target.file !== undefined) fs.rmSync(target.file, { force: true });
      throw err;
    }
    if (plan.removeInputs && input !== '-') fs.rmSync(input);
  }
  if (shared !== undefined) {
    shared.stream.end();
    await finished(shared.stream);
  }
}

function openTarget(file: string, force: boolean, bufferSize: number): Target {
  try {
    return { stream: openOutputFile(file, force, bufferSize), file, shared: false };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new CliError(`${file}: already exists; not overwritten (use -f to overwrite)`);
    throw new CliError(`${file}: cannot create output: ${(err as Error).message}`);
  }
}

function perInputTarget(plan: ZstdPlan, input: string): Target {
  return openTarget(plan.mode === 'compress' ? `${input}.zst` : decompressedName(input), plan.force, plan.bufferSize);
}

async function* copies(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) yield Buffer.from(chunk);
}

function label(input: string): string {
  return input === '-' ? 'stdin' : input;
}

async function processOne(plan: ZstdPlan, input: string, target: Target): Promise<void> {
  if (input !== '-') {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(input);
    } catch (err) {
      throw new CliError(`${input}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    if (stat.isDirectory()) throw new CliError(`${input}: is a directory`);
  }
  const source = openInput(input, plan.bufferSize);
  try {
    if (plan.mode === 'compress') {
      const pledgedSize = input === '-' ? undefined : fs.statSync(input).size;
      // The compressor queues chunks, and openInput reuses its buffers: hand it copies.
      const r = await compressStream(copies(source.chunks), target.stream, {
        level: plan.level,
        longWindowLog: plan.longWindowLog,
        checksum: plan.checksum,
        chunkSize: plan.bufferSize,
        pledgedSize,
        end: !target.shared,
      });
      if (!target.shared) await finished(target.stream);
      if (plan.verbose > 0) {
        const pct = r.inputBytes === 0 ? 0 : (100 * r.outputBytes) / r.inputBytes;
        process.stderr.write(`${label(input)}: ${pct.toFixed(2)}% (${r.inputBytes} => ${r.outputBytes} bytes)\n`);
      }
      return;
    }
    let result: DecodeResult;
    try {
      result = await decodeStream(source.chunks, target.stream, {
        maxWindowSize: plan.maxWindowSize,
        chunkSize: plan.bufferSize,
        formats: ['zstd', 'gzip'],
        gcEvery: GC_EVERY,
        passThrough: plan.force && plan.toStdout,
        end: !target.shared,
      });
    } catch (err) {
      if (err instanceof DecodeError) throw new CliError(`${label(input)}: ${err.message}`, ExitCode.failure, { cause: err });
      throw err;
    }
    if (!target.shared) await finished(target.stream);
    if (plan.verbose > 0) {
      const frames = result.frames ? `, ${result.frames.zstd} zstd frame(s), ${result.frames.skippable} skippable` : '';
      const verb = plan.mode === 'test' ? 'OK' : 'decoded';
      process.stderr.write(`${label(input)}: ${verb} ${result.format} ${result.inputBytes} => ${result.outputBytes} bytes${frames}\n`);
    }
  } finally {
    await source.close();
  }
}
