/**
 * One measured run of a command: wall time, CPU time and peak RSS of the child.
 *
 * Node's child_process reports no rusage, and sampling /proc/<pid> races the exit. So the run is
 * spawned through libc (node:ffi): posix_spawnp, then a blocking wait4 that returns the child's
 * rusage. libuv never sees this pid, so nothing else can reap it first. The event loop is blocked
 * for the length of one run; the runner does nothing else meanwhile.
 *
 * Peak RSS needs one more step. glibc's posix_spawn uses vfork, and the kernel seeds a process's
 * ru_maxrss at exec with the peak RSS of the memory it leaves: here, the whole Node runner
 * (~45 MB). GNU time forks from its own tiny image before exec, so its `%M` is the command's own
 * peak. Each command therefore runs as `/usr/bin/time -f %M -o FILE cmd…`; wall and CPU time
 * include GNU time's own fork/exec (the `/bin/true` row of the start-up suite shows that floor).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface RunMeasurement {
  /** spawn → exit, milliseconds */
  wallMs: number;
  /** user + system CPU time of the command (and GNU time), milliseconds */
  cpuMs: number;
  /** peak resident set of the command, KiB */
  maxRssKiB: number;
}

export const GNU_TIME = '/usr/bin/time';

const EINTR = 4;
const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CREAT = 0o100;
const O_TRUNC = 0o1000;

type Ffi = typeof import('node:ffi');

const LIBC = {
  posix_spawnp: { return: 'i32', arguments: ['pointer', 'string', 'pointer', 'pointer', 'pointer', 'pointer'] },
  posix_spawn_file_actions_init: { return: 'i32', arguments: ['pointer'] },
  posix_spawn_file_actions_addopen: { return: 'i32', arguments: ['pointer', 'i32', 'string', 'i32', 'u32'] },
  posix_spawn_file_actions_destroy: { return: 'i32', arguments: ['pointer'] },
  wait4: { return: 'i32', arguments: ['i32', 'pointer', 'i32', 'pointer'] },
  __errno_location: { return: 'pointer', arguments: [] },
} as const;

let loaded: { ffi: Ffi; libc: ReturnType<typeof loadLibc> } | undefined;

function loadLibc(ffi: Ffi) {
  return ffi.dlopen(null, LIBC).functions;
}

function libc(): NonNullable<typeof loaded> {
  if (loaded) return loaded;
  // node:ffi warns once that it is experimental; the runner's output is a report, keep it clean.
  const listeners = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if (w.name !== 'ExperimentalWarning') for (const l of listeners) l(w);
  });
  const ffi = process.getBuiltinModule('node:ffi') as Ffi | undefined;
  if (!ffi) throw new Error('bench: node:ffi is missing; run with the pinned Node 26 (export PATH=$PWD/node_modules/.bin:$PATH)');
  loaded = { ffi, libc: loadLibc(ffi) };
  return loaded;
}

/** An off-heap buffer: its address stays put while native code holds it. */
function nativeBuffer(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(Math.max(size, 8)));
}

/** A NULL-terminated char*[] plus the buffer holding the strings (keep both alive). */
function cStringArray(ffi: Ffi, items: readonly string[]): { strings: Buffer; pointers: Buffer } {
  const encoded = items.map((s) => Buffer.from(`${s}\0`));
  const strings = nativeBuffer(encoded.reduce((n, b) => n + b.length, 0));
  const pointers = nativeBuffer(8 * (items.length + 1));
  const base = ffi.getRawPointer(strings);
  let offset = 0;
  encoded.forEach((bytes, i) => {
    bytes.copy(strings, offset);
    pointers.writeBigUInt64LE(base + BigInt(offset), 8 * i);
    offset += bytes.length;
  });
  pointers.writeBigUInt64LE(0n, 8 * items.length);
  return { strings, pointers };
}

function timevalMs(buf: Buffer, offset: number): number {
  return Number(buf.readBigInt64LE(offset)) * 1e3 + Number(buf.readBigInt64LE(offset + 8)) / 1e3;
}

export function describeStatus(status: number): string {
  const signal = status & 0x7f;
  return signal === 0 ? `exit code ${(status >> 8) & 0xff}` : `signal ${signal}`;
}

let rssFile: string | undefined;

export interface MeasuredRunOptions {
  /** Write the command's stdout to this file (created or truncated) instead of /dev/null. */
  stdoutFile?: string;
}

/**
 * Runs argv once with stdio on /dev/null (stdout optionally to a file) and the given environment.
 * Throws (with the command and how it ended) unless it exits 0.
 */
export function measuredRun(argv: readonly string[], env: Readonly<Record<string, string>>, opts: MeasuredRunOptions = {}): RunMeasurement {
  const { ffi, libc: c } = libc();
  // GNU time creates this file on each run; it is removed after reading, so nothing is left
  // behind even when the process is killed between runs.
  rssFile ??= path.join(os.tmpdir(), `outrigger-bench-maxrss-${process.pid}-${process.hrtime.bigint()}`);
  const full = [GNU_TIME, '-f', '%M', '-o', rssFile, ...argv];
  const args = cStringArray(ffi, full);
  const envp = cStringArray(ffi, Object.entries(env).map(([k, v]) => `${k}=${v}`));
  const actions = nativeBuffer(256); // posix_spawn_file_actions_t is 80 bytes on glibc
  const pid = nativeBuffer(8);
  const status = nativeBuffer(8);
  const rusage = nativeBuffer(256); // struct rusage is 144 bytes on 64-bit Linux
  c.posix_spawn_file_actions_init(actions);
  try {
    c.posix_spawn_file_actions_addopen(actions, 0, '/dev/null', O_RDONLY, 0);
    if (opts.stdoutFile === undefined) c.posix_spawn_file_actions_addopen(actions, 1, '/dev/null', O_WRONLY, 0);
    else c.posix_spawn_file_actions_addopen(actions, 1, opts.stdoutFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600);
    c.posix_spawn_file_actions_addopen(actions, 2, '/dev/null', O_WRONLY, 0);
    const started = process.hrtime.bigint();
    const rc = c.posix_spawnp(pid, GNU_TIME, actions, 0n, args.pointers, envp.pointers);
    if (rc !== 0) throw new Error(`bench: posix_spawnp ${GNU_TIME} failed with errno ${rc} (install the Debian package "time": scripts/setup-host)`);
    const child = pid.readInt32LE(0);
    let waited: number;
    do waited = c.wait4(child, status, 0, rusage);
    while (waited === -1 && ffi.getInt32(c.__errno_location(), 0) === EINTR);
    const ended = process.hrtime.bigint();
    if (waited !== child) throw new Error(`bench: wait4(${child}) failed with errno ${ffi.getInt32(c.__errno_location(), 0)}`);
    const st = status.readInt32LE(0);
    // GNU time exits with the command's code (127/126 when it cannot exec it).
    if (st !== 0) fs.rmSync(rssFile, { force: true });
    if (st !== 0) throw new Error(`bench: \`${argv.join(' ')}\` ended with ${describeStatus(st)}`);
    const timeOutput = fs.readFileSync(rssFile, 'utf8');
    fs.rmSync(rssFile, { force: true });
    const maxRssKiB = Number.parseInt(timeOutput.trim().split('\n').at(-1) ?? '', 10);
    if (!Number.isFinite(maxRssKiB)) throw new Error(`bench: GNU time wrote no max RSS for \`${argv.join(' ')}\``);
    return {
      wallMs: Number(ended - started) / 1e6,
      cpuMs: timevalMs(rusage, 0) + timevalMs(rusage, 16),
      maxRssKiB,
    };
  } finally {
    c.posix_spawn_file_actions_destroy(actions);
    // args/envp must outlive the spawn; this use keeps them reachable until here.
    void args.strings.length;
    void envp.strings.length;
  }
}
