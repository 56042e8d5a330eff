/**
 * Where a process's stdout and stderr end up when the shim itself writes them to a file
 * (file://, and the fallback for a dead logger): one RotatingFile shared by both streams, each
 * stream assembled into whole lines first when the file rotates. A failing write (disk full,
 * EIO) is logged once and the data dropped, so the pipes keep being drained and the
 * container never blocks on the shim.
 */
import { LineHolder } from './line-holder.ts';
import { RotatingFile } from './rotating-file.ts';
import type { RotationPolicy } from './rotating-file.ts';
import type { StdioLog } from './stdio-log.ts';

/** A line longer than this is written in pieces even if maxSize is larger: the shim holds at most this much per stream. */
export const MAX_HELD_LINE = 1024 * 1024;

export type OutputStream = 'stdout' | 'stderr';

export class OutputFile {
  readonly #file: RotatingFile;
  readonly #holders: Record<OutputStream, LineHolder> | undefined;
  readonly #log: StdioLog;
  readonly #context: object;
  droppedBytes = 0;

  constructor(file: RotatingFile, log: StdioLog, context: object) {
    this.#file = file;
    this.#log = log;
    this.#context = context;
    const policy = file.rotation;
    if (policy !== undefined) {
      const limit = Math.min(policy.maxSize, MAX_HELD_LINE);
      this.#holders = { stdout: new LineHolder(limit), stderr: new LineHolder(limit) };
    }
  }

  static open(path: string, rotation: RotationPolicy | undefined, log: StdioLog, context: object): OutputFile {
    return new OutputFile(RotatingFile.open(path, rotation), log, context);
  }

  get path(): string {
    return this.#file.path;
  }

  write(stream: OutputStream, chunk: Buffer): void {
    const ready = this.#holders ? this.#holders[stream].push(chunk) : chunk;
    if (ready !== undefined) this.#put(ready);
  }

  /** The stream ended: its unfinished last line is written as it is. */
  endStream(stream: OutputStream): void {
    const rest = this.#holders?.[stream].flush();
    if (rest !== undefined) this.#put(rest);
  }

  close(): void {
    this.endStream('stdout');
    this.endStream('stderr');
    try {
      this.#file.close();
    } catch (err) {
      this.#log.warn({ ...this.#context, file: this.#file.path, err: String(err) }, 'closing the output file failed');
    }
  }

  #put(data: Buffer): void {
    try {
      this.#file.write(data);
    } catch (err) {
      if (this.droppedBytes === 0) {
        this.#log.warn({ ...this.#context, file: this.#file.path, err: String(err) }, 'writing container output failed; dropping output until writes succeed again');
      }
      this.droppedBytes += data.length;
    }
  }
}
