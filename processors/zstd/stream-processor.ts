/**
 * containerd stream-processor mode (../shared/reference/imgcrypt.md §1): the layer arrives on
 * stdin, the tar leaves on stdout, and stderr is containerd's error text, read only when we exit
 * non-zero. Because containerd may miss that exit status (containerd#6914), a failure also
 * leaves the tar stream short (decode.ts), so the diff_id check fails whatever happens.
 * `--log-file` gives the operator a line per layer, success included, since containerd keeps
 * nothing of a processor that succeeded.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { decodeStream, DecodeError, type DecodeResult } from './decode.ts';
import { openInput, openStdout, finished } from './io.ts';
import { formatForMediaType, LAYER_MEDIA_TYPES, TAR_MEDIA_TYPE } from './media-types.ts';
import { GC_EVERY, planZstd, type RawZstdOptions } from './options.ts';
import { ZstdChunkedVerifier } from '../estargz/zstd-chunked-verify.ts';

class LayerLog {
  private readonly fd: number | undefined;
  constructor(file: string | undefined) {
    if (file === undefined) return;
    try {
      this.fd = fs.openSync(file, 'a', 0o640);
    } catch (err) {
      throw new CliError(`--log-file ${file}: cannot open: ${(err as Error).message}`);
    }
  }
  /** One line, `key=value` fields, written with a single append so concurrent pulls do not interleave. */
  write(fields: Readonly<Record<string, string | number | undefined>>): void {
    if (this.fd === undefined) return;
    const text = Object.entries(fields)
      .filter((entry): entry is [string, string | number] => entry[1] !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'number' || /^[\w./:+-]*$/.test(v) ? v : JSON.stringify(v)}`)
      .join(' ');
    fs.writeSync(this.fd, `${new Date().toISOString()} outrigger-zstd pid=${process.pid} ${text}\n`);
  }
}

/** Held back at most while waiting for a tar entry to complete (output-queue.ts). */
const TAR_HOLD_BYTES = 4 * 1024 * 1024;
/** How long our stdout outlives us after a failure (see lingerStdout). */
const LINGER_SECONDS = '0.5';

/**
 * After a failure, keeps our stdout pipe open for a moment after we exit, through a `sleep`
 * that inherits only fd 1. containerd extracts until stdout's EOF and then asks the processor
 * for its error without waiting for it to be reaped (containerd#6914); with EOF arriving after
 * our exit, the error (our stderr) is recorded by then and becomes the pull's error message.
 * Best effort: without `sleep`, the cut tar stream and the diff_id check still fail the pull.
 */
function lingerStdout(): void {
  try {
    const child = spawn('sleep', [LINGER_SECONDS], { stdio: ['ignore', 1, 'ignore'], detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // no sleep binary: see above
  }
}

export async function runStreamProcessor(mediaType: string, operands: readonly string[], raw: RawZstdOptions): Promise<void> {
  const plan = planZstd(operands, raw);
  if (plan.inputs.length > 0 || plan.outputFile !== undefined) {
    throw new CliError('stream-processor mode (STREAM_PROCESSOR_MEDIATYPE is set) reads stdin and writes stdout: remove file arguments and -o', ExitCode.usage);
  }
  const log = new LayerLog(plan.logFile);
  const expected = formatForMediaType(mediaType);
  if (expected === undefined) {
    const message = `stream processor: unsupported media type '${mediaType}' in STREAM_PROCESSOR_MEDIATYPE; outrigger zstd decodes ${Object.keys(LAYER_MEDIA_TYPES).join(', ')} (returns ${TAR_MEDIA_TYPE})`;
    log.write({ media: mediaType, result: 'error', error: message });
    throw new CliError(message, ExitCode.usage);
  }
  const started = performance.now();
  const output = openStdout(plan.bufferSize);
  let result: DecodeResult;
  // zstd:chunked layers carry the ordinary tar+zstd media type: each zstd layer is checked
  // against its TOC when it has one (both producers' layouts); plain zstd passes through.
  const chunked = new ZstdChunkedVerifier();
  try {
    // containerd's own decompressor picks gzip or zstd by magic bytes, not by media type; do the
    // same so a mislabelled layer that containerd would unpack still unpacks.
    result = await decodeStream(openInput('-', plan.bufferSize).chunks, output, {
      maxWindowSize: plan.maxWindowSize,
      chunkSize: plan.bufferSize,
      formats: ['zstd', 'gzip'],
      gcEvery: GC_EVERY,
      tarHoldBytes: TAR_HOLD_BYTES,
      passThrough: false,
      end: true,
      observer: chunked,
    });
    await finished(output);
  } catch (err) {
    lingerStdout();
    output.destroy();
    const message = err instanceof Error ? err.message : String(err);
    const offset = err instanceof DecodeError ? err.offset : -1;
    log.write({ media: mediaType, result: 'error', offset, error: message });
    throw new CliError(`zstd stream processor: layer ${mediaType}: ${message}; the tar output was cut short`, ExitCode.failure, { cause: err });
  } finally {
    chunked.close();
  }
  const verified = chunked.result;
  const frames = result.frames ? { frames: result.frames.zstd, skippable: result.frames.skippable } : {};
  log.write({
    media: mediaType,
    result: 'ok',
    format: result.format,
    in: result.inputBytes,
    out: result.outputBytes,
    ...frames,
    ...(verified.format === 'zstd:chunked'
      ? { chunked: `footer${verified.footer}`, toc: verified.tocDigest, chunks: verified.verified?.chunkDigestsChecked, covered: verified.verified?.chunksCoveredByFileDigest }
      : {}),
    ms: Math.round(performance.now() - started),
    ...(result.format !== expected ? { note: `content is ${result.format}, media type says ${expected}` } : {}),
  });
}
