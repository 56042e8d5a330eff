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
import { createPipe } from '../../../src/sys/pipe.ts';
import { runtimeStarted } from './child-wait-hook.ts';
import { rootFor } from './saved-options.ts';
import type { RuntimeOptions } from './saved-options.ts';

export class OciRuntimeError extends Error {
  readonly containerId: string;
  readonly verb: string;
  readonly output: string;
  constructor(containerId: string, verb: string, message: string, output: string) {
    // The message is what containerd shows (Go's wording); the container and verb are fields.
    super(message);
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

/** `runtime checkpoint` flags, from containerd.runc.v1.CheckpointOptions (task-api.md §3.2). */
export interface CheckpointArgs {
  readonly imagePath: string;
  readonly workPath: string;
  /** Stop the container after the dump (else --leave-running). */
  readonly exit: boolean;
  readonly openTcp: boolean;
  readonly externalUnixSockets: boolean;
  readonly terminal: boolean;
  readonly fileLocks: boolean;
  readonly emptyNamespaces: readonly string[];
  readonly cgroupsMode: string;
}

/** `runtime restore --detach` from a checkpoint image into a fresh container. */
export interface RestoreArgs {
  readonly imagePath: string;
  readonly workPath: string;
  readonly pidFile: string;
  readonly consoleSocket?: string;
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

  /**
   * The bundle while it exists. Someone may remove it under a running container; kill and
   * `delete --force` must still work then, so the runtime runs from / without a log file
   * instead of failing to spawn in a missing directory.
   */
  #liveBundle(): string | undefined {
    return this.bundle !== undefined && fs.existsSync(this.bundle) ? this.bundle : undefined;
  }

  #globalArgs(logFile: string | undefined): string[] {
    const args = ['--root', this.root];
    if (logFile !== undefined) args.push('--log', logFile, '--log-format', 'json');
    if (this.options.systemdCgroup) args.push('--systemd-cgroup');
    return args;
  }

  /** With `consoleSocket` the runtime sends the pty master there (spec process.terminal). */
  async create(id: string, pidFile: string, stdio: StdioFds, consoleSocket?: string): Promise<void> {
    if (this.bundle === undefined) throw new OciRuntimeError(id, 'create', `OCI runtime create failed: no bundle for ${id}`, '');
    const args = ['create', '--bundle', this.bundle, '--pid-file', pidFile];
    if (consoleSocket !== undefined) args.push('--console-socket', consoleSocket);
    if (this.options.noPivotRoot) args.push('--no-pivot');
    if (this.options.noNewKeyring) args.push('--no-new-keyring');
    await this.#run(id, 'create', [...args, id], stdio);
  }

  /** Restores a checkpoint image as container `id`, detached, in place of create + start. */
  async restore(id: string, restore: RestoreArgs, stdio: StdioFds): Promise<void> {
    if (this.bundle === undefined) throw new OciRuntimeError(id, 'restore', `OCI runtime restore failed: no bundle for ${id}`, '');
    const args = ['restore', '--detach', '--bundle', this.bundle, '--pid-file', restore.pidFile, '--image-path', restore.imagePath];
    // Without a work path runc keeps CRIU's logs in the image dir.
    if (restore.workPath !== '') args.push('--work-path', restore.workPath);
    // The shim is the subreaper; runc's own would keep the restored process from us.
    args.push('--no-subreaper');
    if (restore.consoleSocket !== undefined) args.push('--console-socket', restore.consoleSocket);
    if (this.options.noPivotRoot) args.push('--no-pivot');
    await this.#run(id, 'restore', [...this.#criuArgs(), ...args, id], stdio);
  }

  async checkpoint(id: string, cp: CheckpointArgs): Promise<void> {
    const args = ['checkpoint', '--image-path', cp.imagePath, '--work-path', cp.workPath];
    if (!cp.exit) args.push('--leave-running');
    if (cp.openTcp) args.push('--tcp-established');
    if (cp.externalUnixSockets) args.push('--ext-unix-sk');
    if (cp.terminal) args.push('--shell-job');
    if (cp.fileLocks) args.push('--file-locks');
    for (const ns of cp.emptyNamespaces) args.push('--empty-ns', ns);
    if (cp.cgroupsMode !== '') args.push('--manage-cgroups-mode', cp.cgroupsMode);
    await this.#run(id, 'checkpoint', [...this.#criuArgs(), ...args, id]);
  }

  /** `update --resources -` with the OCI LinuxResources JSON on stdin. */
  async update(id: string, resourcesJson: string): Promise<void> {
    await this.#run(id, 'update', ['update', '--resources', '-', id], undefined, resourcesJson);
  }

  /** The global --criu flag goes before the verb; runc only reads it for checkpoint/restore. */
  #criuArgs(): string[] {
    return this.options.criuPath ? ['--criu', this.options.criuPath] : [];
  }

  async start(id: string): Promise<void> {
    await this.#run(id, 'start', ['start', id]);
  }

  async exec(id: string, processFile: string, pidFile: string, stdio: StdioFds, consoleSocket?: string): Promise<void> {
    const console = consoleSocket !== undefined ? ['--console-socket', consoleSocket] : [];
    await this.#run(id, 'exec', ['exec', '--process', processFile, ...console, '--detach', '--pid-file', pidFile, id], stdio);
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
      throw new OciRuntimeError(id, 'ps', `OCI runtime ps failed: unexpected output for ${id}: ${out.slice(0, 200)}`, out);
    }
    if (parsed === null) return [];
    if (!Array.isArray(parsed) || !parsed.every((p) => Number.isInteger(p))) throw new OciRuntimeError(id, 'ps', `OCI runtime ps failed: unexpected output for ${id}: ${out.slice(0, 200)}`, out);
    return parsed as number[];
  }

  /** Runs one CLI verb; resolves with its stdout when it is not passed through. */
  #run(id: string, verb: string, args: readonly string[], stdio?: StdioFds, input?: string): Promise<string> {
    const bundle = this.#liveBundle();
    const logFile = bundle !== undefined ? this.logFile : undefined;
    const full = [...this.#globalArgs(logFile), ...args];
    return new Promise((resolve, reject) => {
      // Input goes through a kernel pipe, as Go's exec gives go-runc's Stdin: crun reads
      // `--resources -` by opening /dev/stdin, which fails with ENXIO on the socketpair that
      // Node's 'pipe' stdio is (runc reads fd 0 and takes either).
      const inputPipe = input !== undefined ? createPipe() : undefined;
      let child: ReturnType<typeof spawn>;
      try {
        // With the container's fds as our child's stdio, runc's own complaints land in log.json.
        child = spawn(this.options.binaryName, full, {
          cwd: bundle ?? '/',
          stdio: stdio ? [stdio[0], stdio[1], stdio[2]] : [inputPipe?.read ?? 'ignore', 'pipe', 'pipe'],
        });
      } catch (err) {
        if (inputPipe) for (const fd of [inputPipe.read, inputPipe.write]) fs.closeSync(fd);
        throw err;
      }
      runtimeStarted();
      if (inputPipe) {
        fs.closeSync(inputPipe.read);
        const writer = fs.createWriteStream('', { fd: inputPipe.write });
        writer.on('error', () => {
          // A runtime that exits before reading its input reports why through its exit status.
        });
        writer.end(input);
      }
      let out = '';
      let err = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.once('error', (e) => reject(new OciRuntimeError(id, verb, `OCI runtime ${verb} failed: cannot run ${this.options.binaryName}: ${e.message}`, '')));
      child.once('close', (code, signal) => {
        if (code === 0) {
          resolve(out);
          return;
        }
        // The Go shim's shape: "OCI runtime <verb> failed: " then runc's own log.json message
        // (which already reads "runc create failed: …"), else go-runc's "<binary> did not
        // terminate successfully: exit status N: <output>". Prefixing our own "runc create
        // failed" as well doubled it.
        const status = code !== null ? `exit status ${code}` : `signal: ${signal}`;
        const output = (err + out).trim();
        const detail =
          (logFile !== undefined ? lastLogError(logFile) : undefined) ??
          `${this.options.binaryName} did not terminate successfully: ${status}${output !== '' ? `: ${output}` : ''}`;
        reject(new OciRuntimeError(id, verb, `OCI runtime ${verb} failed: ${detail}`, err + out));
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
