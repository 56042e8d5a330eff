/**
 * `outrigger-log`, a logging driver for binary:// and binary-v2:// stdio. The shim starts it
 * with the container's stdout on fd 3, stderr on fd 4 and a ready pipe on fd 5, environment
 * CONTAINER_ID and CONTAINER_NAMESPACE. It opens the log file, says ready by writing one byte
 * to fd 5 and closing it (which both binary:// and binary-v2:// shims accept), then writes
 * every record of both streams (./record-splitter.ts, ./record-format.ts) through the same
 * rotating writer as file://. It exits 0 once both streams ended, or on SIGTERM/SIGINT after
 * writing out whatever was already in the pipes.
 *
 * fds 3 and 4 are read through a second open of each pipe, because libuv makes what it reads
 * non-blocking and the shim hands the original descriptions to a logger it restarts.
 */
import fs from 'node:fs';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { PipeReader } from '../../src/stdio/pipe-reader.ts';
import { RotatingFile } from '../../src/stdio/rotating-file.ts';
import { parseLogArgs } from './log-args.ts';
import { renderCri, renderJson } from './record-format.ts';
import type { StreamName } from './record-format.ts';
import { RecordSplitter } from './record-splitter.ts';
import type { LogRecord } from './record-splitter.ts';
import { WallClock } from './wall-clock.ts';

const STDOUT_FD = 3;
const STDERR_FD = 4;
const READY_FD = 5;
const { O_RDONLY, O_NONBLOCK } = fs.constants;
const O_CLOEXEC = 0o2000000;

/**
 * Our own description of a pipe on `fd` (see above); other kinds (a file, /dev/null, a socket)
 * are used as they are. Node's own fds (epoll, io_uring) sit at 3 and up when nobody passed
 * any, so anything that is not a stream is taken as "not started by a shim".
 */
function inputFd(fd: number, what: string): number {
  let st: fs.Stats | undefined;
  try {
    st = fs.fstatSync(fd);
  } catch {
    st = undefined;
  }
  if (!st || !(st.isFIFO() || st.isSocket() || st.isFile() || st.isCharacterDevice())) {
    throw new CliError(`log: fd ${fd} (${what}) is not open; outrigger-log is meant to be started by a shim for a binary:// stdio URI`, ExitCode.usage);
  }
  if (!st.isFIFO()) return fd;
  const own = fs.openSync(`/proc/self/fd/${fd}`, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  fs.closeSync(fd);
  return own;
}

function signalReady(): void {
  try {
    fs.writeSync(READY_FD, Buffer.from([0]));
  } catch (err) {
    throw new CliError(`log: cannot signal ready on fd ${READY_FD}: ${err instanceof Error ? err.message : String(err)}`);
  }
  fs.closeSync(READY_FD);
}

export async function runLogDriver(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const settings = parseLogArgs(args);
  const ctx = { containerId: env.CONTAINER_ID ?? '', namespace: env.CONTAINER_NAMESPACE ?? '' };
  const fds = { stdout: inputFd(STDOUT_FD, 'stdout'), stderr: inputFd(STDERR_FD, 'stderr') };
  let file: RotatingFile;
  try {
    file = RotatingFile.open(settings.path, settings.rotation);
  } catch (err) {
    throw new CliError(`log: cannot open ${settings.path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const clock = new WallClock();
  const render = settings.format === 'cri'
    ? (s: StreamName, r: readonly LogRecord[], ns: bigint) => renderCri(s, r, ns)
    : (s: StreamName, r: readonly LogRecord[], ns: bigint) => renderJson(s, r, ns, ctx);
  let writeError: Error | undefined;
  const emit = (stream: StreamName, records: LogRecord[]): void => {
    if (records.length === 0 || writeError) return;
    const ns = clock.nowNs();
    try {
      file.write(render(stream, records, ns));
    } catch (err) {
      // Keep reading so the container never blocks; report once on stderr (the shim logs it).
      writeError = err instanceof Error ? err : new Error(String(err));
      process.stderr.write(`outrigger-log: writing ${settings.path} failed, dropping output: ${writeError.message}\n`);
    }
  };

  const done = new Promise<void>((resolve) => {
    let open = 2;
    const readers: PipeReader[] = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      const splitter = new RecordSplitter();
      readers.push(
        new PipeReader(fds[stream], {
          onData: (chunk) => {
            const out: LogRecord[] = [];
            splitter.push(chunk, out);
            emit(stream, out);
          },
          onEnd: () => {
            const out: LogRecord[] = [];
            splitter.end(out);
            emit(stream, out);
            if (--open === 0) resolve();
          },
          onError: (err) => process.stderr.write(`outrigger-log: reading ${stream}: ${err.message}\n`),
        }),
      );
    }
    const stop = (): void => {
      for (const r of readers) r.finish();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  signalReady();
  await done;
  file.close();
}
