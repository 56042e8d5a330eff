/**
 * Picks the stdio transport from the request, as the Go shim does (shim-protocol.md §4.1): all
 * empty means null IO; otherwise only the stdout URI's scheme decides. Plain paths and fifo://
 * are FIFOs, file:// a file the shim writes, binary:// and binary-v2:// a logger process.
 * Async because a logger must have signalled ready before Create/Start may return.
 */
import { BinaryIo } from './binary-io.ts';
import { ConsoleIo } from './console-io.ts';
import { pipeConsoleOutput } from './console-output.ts';
import type { ConsoleOutput } from './console-output.ts';
import { FifoIo } from './fifo-io.ts';
import { FIFO_READER_TIMEOUT_MS, waitForFifoReaders } from './fifo-reader-wait.ts';
import type { FifoReaders } from './fifo-reader-wait.ts';
import { FileIo } from './file-io.ts';
import { loggerSettingsFromEnv } from './logger-settings.ts';
import { NullIo } from './null-io.ts';
import type { ProcessIo, StdioOwner, StdioRequest } from './process-io.ts';
import { StdioError } from './process-io.ts';
import { silentStdioLog } from './stdio-log.ts';
import type { StdioLog } from './stdio-log.ts';
import { parseStdioUri } from './stdio-uri.ts';

/** Who the process is, for binary:// (logger environment, fallback file) and log lines. */
export interface StdioContext {
  readonly containerId: string;
  readonly namespace: string;
  readonly bundle: string;
  /** Empty or absent for a container's init process. */
  readonly execId?: string;
  readonly log?: StdioLog;
}

export function stdioScheme(stdout: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(stdout);
  return m ? m[1]!.toLowerCase() : 'fifo';
}

function fifoPath(uri: string): string {
  return uri.startsWith('fifo://') ? uri.slice('fifo://'.length) : uri;
}

export async function openProcessIo(req: StdioRequest, owner?: StdioOwner, context?: StdioContext): Promise<ProcessIo> {
  if (req.terminal) {
    const output = await consoleOutputFor(req, owner, context);
    if (output !== undefined || req.stdout === '') return ConsoleIo.open(req, owner, output);
    const readers = await waitForOutputReaders([fifoPath(req.stdout)], context);
    return ConsoleIo.open(req, owner, undefined, () => readers.release());
  }
  if (req.stdin === '' && req.stdout === '' && req.stderr === '') return new NullIo();
  return openPipedIo(req, owner, context);
}

/**
 * With a terminal, file:// and binary:// stdout get the same FileIo/BinaryIo as without one,
 * fed by the console instead of the process (stdin stays with the console). Undefined: a FIFO
 * path, which ConsoleIo opens itself.
 */
async function consoleOutputFor(req: StdioRequest, owner: StdioOwner | undefined, context: StdioContext | undefined): Promise<ConsoleOutput | undefined> {
  const scheme = stdioScheme(req.stdout);
  if (req.stdout === '' || scheme === 'fifo') return undefined;
  if (scheme !== 'file' && scheme !== 'binary' && scheme !== 'binary-v2') return undefined; // ConsoleIo names the refusal
  const io = await openPipedIo({ stdin: '', stdout: req.stdout, stderr: '', terminal: false }, owner, context);
  return pipeConsoleOutput(io, req.stdout);
}

/** Waits for the client's readers (./fifo-reader-wait.ts) and logs the FIFOs that had none. */
async function waitForOutputReaders(paths: string[], context: StdioContext | undefined): Promise<FifoReaders> {
  const readers = await waitForFifoReaders(paths);
  if (readers.missing.length > 0) {
    (context?.log ?? silentStdioLog).warn(
      { container: context?.containerId, exec: context?.execId || undefined, fifos: readers.missing, waitedMs: FIFO_READER_TIMEOUT_MS },
      'no reader on the output FIFO; the process runs and its output waits in the FIFO',
    );
  }
  return readers;
}

async function openPipedIo(req: StdioRequest, owner: StdioOwner | undefined, context: StdioContext | undefined): Promise<ProcessIo> {
  const scheme = stdioScheme(req.stdout);
  const log = context?.log ?? silentStdioLog;
  const execId = context?.execId || undefined;
  switch (scheme) {
    case 'fifo': {
      const fifos = { ...req, stdin: fifoPath(req.stdin), stdout: fifoPath(req.stdout), stderr: fifoPath(req.stderr) };
      const readers = await waitForOutputReaders([fifos.stdout, fifos.stderr], context);
      try {
        return FifoIo.open(fifos, owner);
      } finally {
        readers.release();
      }
    }
    case 'file':
      return FileIo.open({
        uri: parseStdioUri(req.stdout),
        stdin: fifoPath(req.stdin),
        wantStdout: req.stdout !== '',
        wantStderr: req.stderr !== '',
        owner,
        log,
        context: { container: context?.containerId, exec: execId },
      });
    case 'binary':
    case 'binary-v2':
      return BinaryIo.open({
        uri: parseStdioUri(req.stdout),
        containerId: context?.containerId ?? '',
        namespace: context?.namespace ?? '',
        bundle: context?.bundle ?? '',
        execId,
        owner,
        settings: loggerSettingsFromEnv(process.env),
        log,
      });
    default:
      throw new StdioError(`unknown STDIO scheme ${scheme}`);
  }
}
