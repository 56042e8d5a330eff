/**
 * `file:///path[?maxSize=…&maxFiles=…]` stdio (shim-protocol.md §4.3): the process writes real
 * pipes (one per non-empty stdout/stderr field, chowned to io_uid/io_gid, as the Go shim makes
 * them) and the shim appends both to one file. Go ignores every query parameter; we read
 * maxSize/maxFiles for rotation (./rotating-file.ts) and, like Go, ignore any other key (with
 * a note in the shim log). Without maxSize the bytes are exactly what Go writes. A stdin
 * FIFO, if given, is handed to the process as FifoIo hands it.
 */
import fs from 'node:fs';
import { createPipe } from '../sys/pipe.ts';
import type { OsPipe } from '../sys/pipe.ts';
import { FifoIo } from './fifo-io.ts';
import { OutputFile } from './output-file.ts';
import type { OutputStream } from './output-file.ts';
import { PipeReader } from './pipe-reader.ts';
import type { ProcessIo, StdioFd, StdioOwner } from './process-io.ts';
import { StdioError } from './process-io.ts';
import { DEFAULT_MAX_FILES } from './rotating-file.ts';
import type { RotationPolicy } from './rotating-file.ts';
import { parseSize, SizeError } from './size-units.ts';
import type { StdioLog } from './stdio-log.ts';
import type { StdioUri } from './stdio-uri.ts';

export { DEFAULT_MAX_FILES } from './rotating-file.ts';

/** maxSize/maxFiles from the query; undefined (no rotation) without maxSize. Other keys are returned for a warning. */
export function rotationFromQuery(uri: StdioUri): { rotation: RotationPolicy | undefined; ignored: string[] } {
  const ignored = [...uri.query.keys()].filter((k) => k !== 'maxSize' && k !== 'maxFiles');
  const sizeText = uri.query.get('maxSize')?.[0];
  const filesText = uri.query.get('maxFiles')?.[0];
  if (sizeText === undefined) {
    if (filesText !== undefined) ignored.push('maxFiles (no effect without maxSize)');
    return { rotation: undefined, ignored };
  }
  let maxSize: number;
  try {
    maxSize = parseSize(sizeText, 'maxSize');
  } catch (err) {
    throw new StdioError(`stdio URI ${uri.raw}: ${err instanceof SizeError ? err.message : String(err)}`);
  }
  let maxFiles = DEFAULT_MAX_FILES;
  if (filesText !== undefined) {
    if (!/^\d+$/.test(filesText) || Number(filesText) < 1 || Number(filesText) > 1000) {
      throw new StdioError(`stdio URI ${uri.raw}: maxFiles "${filesText}": want a whole number from 1 to 1000`);
    }
    maxFiles = Number(filesText);
  }
  return { rotation: { maxSize, maxFiles }, ignored };
}

function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

function chownPipe(fd: number, owner: StdioOwner | undefined, what: string): void {
  if (owner === undefined || (owner.uid === 0 && owner.gid === 0)) return;
  try {
    fs.fchownSync(fd, owner.uid, owner.gid);
  } catch (err) {
    throw new StdioError(`${what}: chown pipe to ${owner.uid}:${owner.gid}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

export interface FileIoOptions {
  readonly uri: StdioUri;
  /** Which of the request's fields were set: a pipe is made only for those (Go uses the original fields). */
  readonly stdin: string;
  readonly wantStdout: boolean;
  readonly wantStderr: boolean;
  readonly owner?: StdioOwner;
  readonly log: StdioLog;
  /** container/exec ids for log lines. */
  readonly context: object;
}

export class FileIo implements ProcessIo {
  readonly fds: readonly [StdioFd, StdioFd, StdioFd];
  readonly output: OutputFile;
  readonly #stdin: FifoIo | undefined;
  readonly #readers: PipeReader[] = [];
  #writeEnds: number[];
  #open = 0;
  #closed = false;

  private constructor(fds: readonly [StdioFd, StdioFd, StdioFd], output: OutputFile, stdin: FifoIo | undefined, writeEnds: number[]) {
    this.fds = fds;
    this.output = output;
    this.#stdin = stdin;
    this.#writeEnds = writeEnds;
  }

  static open(opts: FileIoOptions): FileIo {
    const { rotation, ignored } = rotationFromQuery(opts.uri);
    if (ignored.length > 0) opts.log.info({ ...opts.context, uri: opts.uri.raw, ignored }, 'file:// query parameters ignored');
    let output: OutputFile;
    try {
      output = OutputFile.open(opts.uri.path, rotation, opts.log, opts.context);
    } catch (err) {
      throw new StdioError(`file:// ${opts.uri.path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const pipes: { stream: OutputStream; pipe: OsPipe }[] = [];
    let stdin: FifoIo | undefined;
    try {
      if (opts.wantStdout) pipes.push({ stream: 'stdout', pipe: createPipe() });
      if (opts.wantStderr) pipes.push({ stream: 'stderr', pipe: createPipe() });
      for (const { stream, pipe } of pipes) chownPipe(pipe.write, opts.owner, stream);
      if (opts.stdin !== '') stdin = FifoIo.open({ stdin: opts.stdin, stdout: '', stderr: '', terminal: false }, opts.owner);
    } catch (err) {
      for (const { pipe } of pipes) [pipe.read, pipe.write].forEach(closeQuietly);
      output.close();
      throw err;
    }
    const fdOf = (stream: OutputStream): StdioFd => pipes.find((p) => p.stream === stream)?.pipe.write ?? 'ignore';
    const io = new FileIo([stdin?.fds[0] ?? 'ignore', fdOf('stdout'), fdOf('stderr')], output, stdin, pipes.map((p) => p.pipe.write));
    for (const { stream, pipe } of pipes) io.#read(stream, pipe.read, opts);
    return io;
  }

  #read(stream: OutputStream, fd: number, opts: FileIoOptions): void {
    this.#open++;
    const reader = new PipeReader(fd, {
      onData: (chunk) => this.output.write(stream, chunk),
      onEnd: () => {
        this.output.endStream(stream);
        if (--this.#open === 0) this.output.close();
      },
      onError: (err) => opts.log.warn({ ...opts.context, stream, err: err.message }, `reading the container's ${stream} pipe failed`),
    });
    this.#readers.push(reader);
  }

  afterStart(): void {
    for (const fd of this.#writeEnds.splice(0)) closeQuietly(fd);
    this.#stdin?.afterStart();
  }

  closeStdin(): void {
    this.#stdin?.closeStdin();
  }

  processExited(): void {
    this.#stdin?.processExited();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.afterStart();
    this.#stdin?.close();
    for (const r of this.#readers) r.finish();
    this.output.close();
  }
}
