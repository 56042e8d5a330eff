/**
 * The OCI runtime CLI (runc, or crun through BinaryName), driven the way containerd's runc shim
 * drives it: global `--root <root>/<ns> --log <bundle>/log.json --log-format json
 * [--systemd-cgroup]`, pid files for create and exec, detached exec. The container's stdio fds
 * are handed to `create`/`exec` as the CLI's own stdio, which runc passes through to the
 * process. Errors quote the runtime's last log.json message and name the container and verb.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { rootFor } from './saved-options.ts';
import type { RuntimeOptions } from './saved-options.ts';

export class OciRuntimeError extends Error {
  readonly containerId: string;
  readonly verb: string;
  readonly output: string;
  constructor(containerId: string, verb: string, message: string, output: string) {
    super(`${verb} ${containerId}: ${message}`);
    this.name = 'OciRuntimeError';
    this.containerId = containerId;
    this.verb = verb;
    this.output = output;
  }
}

export type StdioFds = readonly [number | 'ignore', number | 'ignore', number | 'ignore'];

export interface PsEntry {
  readonly pid: number;
}

export class OciRuntime {
  readonly options: RuntimeOptions;
  readonly namespace: string;
  /** Where the CLI runs and logs; undefined when the bundle is gone (delete after the fact). */
  readonly bundle: string | undefined;

  constructor(options: RuntimeOptions, namespace: string, bundle: string | undefined) {
    this.options = options;
    this.namespace = namespace;
    this.bundle = bundle;
  }

  get root(): string {
    return rootFor(this.options, this.namespace);
  }

  get logFile(): string | undefined {
    return this.bundle === undefined ? undefined : path.join(this.bundle, 'log.json');
  }

  #globalArgs(): string[] {
    const args = ['--root', this.root];
    if (this.logFile !== undefined) args.push('--log', this.logFile, '--log-format', 'json');
    if (this.options.systemdCgroup) args.push('--systemd-cgroup');
    return args;
  }

  async create(id: string, pidFile: string, stdio: StdioFds): Promise<void> {
    if (this.bundle === undefined) throw new OciRuntimeError(id, 'create', 'no bundle', '');
    const args = ['create', '--bundle', this.bundle, '--pid-file', pidFile];
    if (this.options.noPivotRoot) args.push('--no-pivot');
    if (this.options.noNewKeyring) args.push('--no-new-keyring');
    await this.#run(id, 'create', [...args, id], stdio);
  }

  async start(id: string): Promise<void> {
    await this.#run(id, 'start', ['start', id]);
  }

  async exec(id: string, processFile: string, pidFile: string, stdio: StdioFds): Promise<void> {
    await this.#run(id, 'exec', ['exec', '--process', processFile, '--detach', '--pid-file', pidFile, id], stdio);
  }

  async kill(id: string, signal: number, all: boolean): Promise<void> {
    await this.#run(id, 'kill', ['kill', ...(all ? ['--all'] : []), id, String(signal)]);
  }

  async delete(id: string, force: boolean): Promise<void> {
    await this.#run(id, 'delete', ['delete', ...(force ? ['--force'] : []), id]);
  }

  async pause(id: string): Promise<void> {
    await this.#run(id, 'pause', ['pause', id]);
  }

  async resume(id: string): Promise<void> {
    await this.#run(id, 'resume', ['resume', id]);
  }

  async ps(id: string): Promise<number[]> {
    const out = await this.#run(id, 'ps', ['ps', '--format', 'json', id]);
    let parsed: unknown;
    try {
      parsed = JSON.parse(out.trim() === '' ? '[]' : out);
    } catch {
      throw new OciRuntimeError(id, 'ps', `unexpected output: ${out.slice(0, 200)}`, out);
    }
    if (parsed === null) return [];
    if (!Array.isArray(parsed) || !parsed.every((p) => Number.isInteger(p))) throw new OciRuntimeError(id, 'ps', `unexpected output: ${out.slice(0, 200)}`, out);
    return parsed as number[];
  }

  /** Runs one CLI verb; resolves with its stdout when it is not passed through. */
  #run(id: string, verb: string, args: readonly string[], stdio?: StdioFds): Promise<string> {
    const full = [...this.#globalArgs(), ...args];
    return new Promise((resolve, reject) => {
      // With the container's fds as our child's stdio, runc's own complaints land in log.json.
      const child = spawn(this.options.binaryName, full, {
        cwd: this.bundle ?? '/',
        stdio: stdio ? [stdio[0], stdio[1], stdio[2]] : ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.once('error', (e) => reject(new OciRuntimeError(id, verb, `cannot run ${this.options.binaryName}: ${e.message}`, '')));
      child.once('close', (code, signal) => {
        if (code === 0) {
          resolve(out);
          return;
        }
        const detail = (this.logFile !== undefined ? lastLogError(this.logFile) : undefined) ?? (err.trim() || out.trim() || `exit ${code ?? signal}`);
        reject(new OciRuntimeError(id, verb, `${this.options.binaryName} ${verb} failed: ${detail}`, err + out));
      });
    });
  }
}

/** The last error message runc/crun wrote to its JSON log, which says why a verb failed. */
export function lastLogError(file: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.trimEnd().split('\n');
  for (let i = lines.length - 1; i >= 0 && i >= lines.length - 20; i--) {
    try {
      const entry = JSON.parse(lines[i]!) as { level?: string; msg?: string };
      if ((entry.level === 'error' || entry.level === 'fatal') && entry.msg) return entry.msg;
    } catch {
      // crun writes plain-text lines in some versions; fall through
    }
  }
  return undefined;
}

/** Reads a pid file written by the runtime. */
export function readPidFile(file: string): number {
  const text = fs.readFileSync(file, 'utf8').trim();
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`pid file ${file} holds ${JSON.stringify(text)}, not a pid`);
  return pid;
}
