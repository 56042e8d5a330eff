/**
 * file:// and binary:// stdio with real processes: `sh` stands in for the container process
 * (it gets the fds the OCI runtime would get), and loggers are real executables started with
 * the Go shim's contract. What matters: output reaches the file or logger; the logger sees
 * exactly the argv, environment and fds the contract gives; a logger that never signals or
 * fails binary-v2's handshake fails the open with its name; a dead logger never blocks the
 * process and its output ends up in the fallback file; a restarted logger takes over.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BinaryIo, fallbackPathFor } from '../src/stdio/binary-io.ts';
import { FileIo } from '../src/stdio/file-io.ts';
import { DEFAULT_LOGGER_SETTINGS, loggerSettingsFromEnv } from '../src/stdio/logger-settings.ts';
import type { LoggerSettings } from '../src/stdio/logger-settings.ts';
import { openProcessIo } from '../src/stdio/open-process-io.ts';
import type { ProcessIo } from '../src/stdio/process-io.ts';
import { rotatedFilesOldestFirst } from '../src/stdio/rotating-file.ts';
import type { StdioLog } from '../src/stdio/stdio-log.ts';
import { parseStdioUri } from '../src/stdio/stdio-uri.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stdio-io-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Entry {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}
function recordingLog(): StdioLog & { entries: Entry[] } {
  const entries: Entry[] = [];
  const at = (level: string) => (obj: object, msg: string) => entries.push({ level, obj: obj as Record<string, unknown>, msg });
  return { entries, warn: at('warn'), info: at('info'), debug: at('debug') };
}

/** Runs `script` under sh with the io's fds, as runc would hand them over; resolves with its exit code. */
async function runProcess(io: ProcessIo, script: string): Promise<number | null> {
  const child = spawn('sh', ['-c', script], { stdio: [io.fds[0], io.fds[1], io.fds[2]] });
  await new Promise((resolve) => child.once('spawn', resolve));
  io.afterStart();
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  io.processExited();
  return code;
}

function logger(name: string, body: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
}

async function until<T>(what: string, probe: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const settings = (over: Partial<LoggerSettings> = {}): LoggerSettings => ({ ...DEFAULT_LOGGER_SETTINGS, readyTimeoutMs: 5_000, ...over });

function binaryIo(uri: string, over: Partial<LoggerSettings> = {}, log: StdioLog = recordingLog()): Promise<BinaryIo> {
  fs.mkdirSync(path.join(dir, 'bundle'), { recursive: true });
  return BinaryIo.open({ uri: parseStdioUri(uri), containerId: 'c1', namespace: 'ns1', bundle: path.join(dir, 'bundle'), settings: settings(over), log });
}

describe('FileIo', () => {
  it('appends stdout and stderr to one file in dirs it makes, modes as Go (0755 dirs, 0644 file)', async () => {
    const file = path.join(dir, 'a', 'b', 'c.log');
    const io = await openProcessIo({ stdin: '', stdout: `file://${file}`, stderr: `file://${file}`, terminal: false });
    expect(io).toBeInstanceOf(FileIo);
    expect(fs.existsSync(file)).toBe(true); // created at open, as Go does, before any output
    expect(fs.readlinkSync(`/proc/self/fd/${io.fds[1]}`)).toMatch(/^pipe:/);
    expect(await runProcess(io, 'echo out; echo err >&2; echo out2')).toBe(0);
    io.close();
    expect(fs.readFileSync(file, 'utf8').split('\n').sort()).toEqual(['', 'err', 'out', 'out2']);
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    expect(fs.statSync(path.join(dir, 'a')).mode & 0o777).toBe(0o755);
  });

  it('rotates with maxSize/maxFiles: every line once, in order, none split', async () => {
    const file = path.join(dir, 'r.log');
    const io = await openProcessIo({ stdin: '', stdout: `file://${file}?maxSize=10KiB&maxFiles=100&ignored=1`, stderr: `file://${file}?maxSize=10KiB&maxFiles=100`, terminal: false });
    expect(await runProcess(io, 'i=0; while [ $i -lt 5000 ]; do echo "line $i"; i=$((i+1)); done')).toBe(0);
    io.close();
    const files = rotatedFilesOldestFirst(file);
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) {
      const text = fs.readFileSync(f, 'utf8');
      expect(text.length).toBeLessThanOrEqual(10 * 1024);
      expect(text.endsWith('\n')).toBe(true);
    }
    const lines = files.map((f) => fs.readFileSync(f, 'utf8')).join('').split('\n').slice(0, -1);
    expect(lines).toEqual(Array.from({ length: 5000 }, (_, i) => `line ${i}`));
  });

  it('refuses a bad maxSize and a URI with a host by name', async () => {
    await expect(openProcessIo({ stdin: '', stdout: `file://${dir}/x.log?maxSize=big`, stderr: '', terminal: false })).rejects.toThrow(/maxSize "big"/);
    await expect(openProcessIo({ stdin: '', stdout: 'file://var/log/x.log', stderr: '', terminal: false })).rejects.toThrow(/has host "var"/);
  });
});

describe('BinaryIo', () => {
  it('starts the logger with the Go contract: argv pairs, only CONTAINER_ID/CONTAINER_NAMESPACE, fds 3/4/5', async () => {
    const out = path.join(dir, 'out');
    const bin = logger('lg', `echo "$@" > ${out}.argv; /bin/cat /proc/$$/environ > ${out}.env; printf x >&5; exec 5>&-; /bin/cat <&4 >> ${out}.err & /bin/cat <&3 >> ${out}.out; wait`);
    const io = await binaryIo(`binary://${bin}?b=2&a=1&b=3&flag`);
    expect(await runProcess(io, 'echo hello; echo oops >&2')).toBe(0);
    await until('logger output', () => (fs.existsSync(`${out}.err`) && fs.readFileSync(`${out}.err`, 'utf8') === 'oops\n' && fs.readFileSync(`${out}.out`, 'utf8') === 'hello\n' ? true : undefined));
    expect(fs.readFileSync(`${out}.argv`, 'utf8')).toBe('b 2 a 1 flag \n');
    expect(fs.readFileSync(`${out}.env`, 'utf8').split('\0').filter(Boolean).sort()).toEqual(['CONTAINER_ID=c1', 'CONTAINER_NAMESPACE=ns1']);
    io.close();
  });

  it('binary-v2: closing fd 5 without a byte is a failed start that names the logger and quotes its stderr', async () => {
    const bin = logger('v2bad', 'echo "cannot reach the log server" >&2; exec 5>&-; exit 3');
    await expect(binaryIo(`binary-v2://${bin}`)).rejects.toThrow(new RegExp(`binary-v2 logger ${bin} did not call ready.*status 3.*cannot reach the log server`));
    // binary:// (v1) takes the same EOF as ready, as the Go shim does.
    const io = await binaryIo(`binary://${bin}`);
    io.close();
  });

  it('a logger that never signals fails the open after the timeout, naming it, and is killed', async () => {
    const pidFile = path.join(dir, 'pid');
    const bin = logger('mute', `echo $$ > ${pidFile}; exec /bin/sleep 1000`);
    await expect(binaryIo(`binary://${bin}?x=y`, { readyTimeoutMs: 300 })).rejects.toThrow(`binary logger ${bin} did not signal ready within 300ms`);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    await until('the mute logger to be gone', () => (fs.existsSync(`/proc/${pid}`) ? undefined : true));
  });

  it('a missing logger binary fails the open with its path', async () => {
    await expect(binaryIo(`binary://${dir}/no-such-logger`)).rejects.toThrow(new RegExp(`${dir}/no-such-logger: cannot start: .*ENOENT`));
  });

  it('a logger that exits at once never blocks the process: its output goes to the fallback file, with a warning', async () => {
    const log = recordingLog();
    const bin = logger('quitter', 'exit 1');
    const io = await binaryIo(`binary://${bin}`, {}, log);
    // 1 MiB, far more than a pipe holds: this only finishes if someone drains the pipes.
    expect(await runProcess(io, 'head -c 1048576 /dev/zero | tr "\\0" "y"; echo; echo to-stderr >&2')).toBe(0);
    const fallback = fallbackPathFor(path.join(dir, 'bundle'));
    io.close();
    const text = fs.readFileSync(fallback, 'utf8');
    expect(text).toContain('to-stderr\n');
    expect(text.replaceAll('to-stderr\n', '')).toBe(`${'y'.repeat(1048576)}\n`);
    expect(log.entries.some((e) => e.level === 'warn' && /fallback file/.test(e.msg) && e.obj.file === fallback)).toBe(true);
  });

  it('restarts a dead logger with back-off; the new one takes over the same pipes', async () => {
    const log = recordingLog();
    const starts = path.join(dir, 'starts');
    const out = path.join(dir, 'out');
    // Each logger takes one line and dies.
    const bin = logger('oneline', `echo start >> ${starts}; printf x >&5; exec 5>&-; read line <&3; echo "$line" >> ${out}; exit 1`);
    const io = await binaryIo(`binary://${bin}`, { maxRestarts: 1, backoffMs: 50 }, log);
    const script = `echo first; while [ "$(wc -l < ${starts})" -lt 2 ]; do sleep 0.05; done; echo second; echo third`;
    expect(await runProcess(io, script)).toBe(0);
    await until('second logger line', () => (fs.existsSync(out) && fs.readFileSync(out, 'utf8') === 'first\nsecond\n' ? true : undefined));
    await until('both loggers gone', () => (log.entries.filter((e) => /logger exited/.test(e.msg)).length === 2 ? true : undefined));
    io.close();
    expect(log.entries.some((e) => e.msg === 'logger restarted')).toBe(true);
    // The third line arrived after the last restart was used up: the fallback has it.
    expect(fs.readFileSync(fallbackPathFor(path.join(dir, 'bundle')), 'utf8')).toBe('third\n');
  });
});

describe('logger settings', () => {
  it('reads the environment, refusing bad values by name', () => {
    expect(loggerSettingsFromEnv({ OUTRIGGER_LOGGER_READY_TIMEOUT: '500ms', OUTRIGGER_LOGGER_RESTARTS: '3' })).toMatchObject({ readyTimeoutMs: 500, maxRestarts: 3 });
    expect(loggerSettingsFromEnv({ OUTRIGGER_LOGGER_READY_TIMEOUT: '2m' }).readyTimeoutMs).toBe(120_000);
    expect(loggerSettingsFromEnv({}).readyTimeoutMs).toBe(30_000);
    expect(() => loggerSettingsFromEnv({ OUTRIGGER_LOGGER_READY_TIMEOUT: 'soon' })).toThrow(/OUTRIGGER_LOGGER_READY_TIMEOUT="soon"/);
    expect(() => loggerSettingsFromEnv({ OUTRIGGER_LOGGER_RESTARTS: '-1' })).toThrow(/OUTRIGGER_LOGGER_RESTARTS/);
  });
});
