/**
 * `binary:///path?k=v` and `binary-v2:///path?k=v` stdio (shim-protocol.md §4.4): the process
 * writes two real pipes whose read ends go to a logger process (./logger-process.ts), which the
 * shim then supervises (./logger-supervisor.ts). Create/Start returns once the logger is ready.
 * As in Go, stdin is not connected (the process gets /dev/null) and both pipes are made
 * whatever the stderr field says.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createPipe } from '../sys/pipe.ts';
import type { OsPipe } from '../sys/pipe.ts';
import type { LoggerSettings } from './logger-settings.ts';
import { LoggerSupervisor } from './logger-supervisor.ts';
import type { ProcessIo, StdioFd, StdioOwner } from './process-io.ts';
import { StdioError } from './process-io.ts';
import type { StdioLog } from './stdio-log.ts';
import { firstValues } from './stdio-uri.ts';
import type { StdioUri } from './stdio-uri.ts';

export interface BinaryIoOptions {
  readonly uri: StdioUri;
  readonly containerId: string;
  readonly namespace: string;
  readonly bundle: string;
  /** Set for an exec'd process: names its fallback file. */
  readonly execId?: string;
  readonly owner?: StdioOwner;
  readonly settings: LoggerSettings;
  readonly log: StdioLog;
}

/** `<bundle>.stdio-fallback.log` (init) or `<bundle>.<exec id>.stdio-fallback.log`: beside the bundle, so it outlives Delete. */
export function fallbackPathFor(bundle: string, execId?: string): string {
  const base = path.resolve(bundle);
  return execId ? `${base}.${execId}.stdio-fallback.log` : `${base}.stdio-fallback.log`;
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

export class BinaryIo implements ProcessIo {
  readonly fds: readonly [StdioFd, StdioFd, StdioFd];
  readonly supervisor: LoggerSupervisor;
  #writeEnds: number[];
  #closed = false;

  private constructor(fds: readonly [StdioFd, StdioFd, StdioFd], supervisor: LoggerSupervisor, writeEnds: number[]) {
    this.fds = fds;
    this.supervisor = supervisor;
    this.#writeEnds = writeEnds;
  }

  static async open(opts: BinaryIoOptions): Promise<BinaryIo> {
    const { uri } = opts;
    if (opts.containerId === '' || opts.namespace === '' || opts.bundle === '') {
      throw new StdioError(`${uri.scheme}:// needs the container id, namespace and bundle (internal: missing from the stdio context)`);
    }
    const pipes: OsPipe[] = [];
    try {
      const out = createPipe();
      pipes.push(out);
      const err = createPipe();
      pipes.push(err);
      const owner = opts.owner;
      if (owner !== undefined && (owner.uid !== 0 || owner.gid !== 0)) {
        for (const p of pipes) fs.fchownSync(p.write, owner.uid, owner.gid);
      }
      const context = { container: opts.containerId, exec: opts.execId };
      const supervisor = await LoggerSupervisor.start({
        command: {
          path: uri.path,
          args: firstValues(uri.query).flat(),
          strictReady: uri.scheme === 'binary-v2',
          containerId: opts.containerId,
          namespace: opts.namespace,
          cwd: opts.bundle,
        },
        stdoutRead: out.read,
        stderrRead: err.read,
        settings: opts.settings,
        fallbackPath: fallbackPathFor(opts.bundle, opts.execId),
        log: opts.log,
        context,
      });
      return new BinaryIo(['ignore', out.write, err.write], supervisor, [out.write, err.write]);
    } catch (err) {
      for (const p of pipes) [p.read, p.write].forEach(closeQuietly);
      throw err instanceof StdioError ? err : new StdioError(`${uri.scheme}:// logger ${uri.path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  afterStart(): void {
    for (const fd of this.#writeEnds.splice(0)) closeQuietly(fd);
  }

  closeStdin(): void {}

  processExited(): void {
    this.supervisor.processExited();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.afterStart();
    this.supervisor.stop();
  }
}
