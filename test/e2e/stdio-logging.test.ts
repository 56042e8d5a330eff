/**
 * Container output through `ctr run --log-uri` under our shim (io.containerd.outrigger.v2),
 * with real containerd 1.6 and runc: file:// (byte-for-byte what the Go runc shim writes),
 * file:// with rotation over 100 MB, binary:// and binary-v2:// with outrigger-log and with a
 * tiny shell logger, a logger that dies at once (the container still finishes, its output is in
 * the fallback file next to the bundle) and a logger that never signals (create fails after
 * the timeout, naming the logger). containerd runs with OUTRIGGER_LOGGER_READY_TIMEOUT=3s.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rotatedFilesOldestFirst } from '../../src/stdio/rotating-file.ts';
import { startContainerd, uniqueId, useContainerd } from './harness.ts';
import { OUTRIGGER, RUNC_V2, pinnedShimBinDir, shimFor, taskStatus, useTestImage, waitFor } from './shim-support.ts';

const image = useTestImage();
const binDir = pinnedShimBinDir();
const OUTRIGGER_LOG = path.join(binDir, 'outrigger-log');
fs.symlinkSync('outrigger', OUTRIGGER_LOG);
const ctd = useContainerd({ binDirs: [binDir], env: { OUTRIGGER_LOGGER_READY_TIMEOUT: '3s' } });

function work(name: string): string {
  const d = path.join(ctd().dir, 'logs', name);
  fs.mkdirSync(path.dirname(d), { recursive: true });
  return d;
}

function logger(name: string, body: string): string {
  const p = path.join(ctd().dir, name);
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
}

async function runWithLog(runtime: string, logUri: string, script: string, id = uniqueId('log')) {
  return ctd().run({ image: image().name, id, runtime, flags: ['--log-uri', logUri], args: ['sh', '-c', script] });
}

/** Live processes started as `argv0` (a logger). */
function loggerPids(argv0: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[0] === argv0) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

/** Checks that `files` (oldest first) hold the lines 1..n of `seq`, each once, in order, none split. */
function expectSeqLines(files: string[], n: number, maxSize: number): void {
  let expected = 1;
  let current = 0;
  for (const f of files) {
    const buf = fs.readFileSync(f);
    expect(buf.length, f).toBeLessThanOrEqual(maxSize);
    expect(buf.at(-1), `${f} ends inside a line`).toBe(0x0a);
    for (const b of buf) {
      if (b === 0x0a) {
        if (current !== expected) throw new Error(`${f}: line ${current} where ${expected} was due`);
        expected++;
        current = 0;
      } else {
        current = current * 10 + (b - 0x30);
      }
    }
  }
  expect(expected - 1).toBe(n);
}

describe('ctr run --log-uri under io.containerd.outrigger.v2', () => {
  it('imports the test image', async () => {
    await ctd().importImage(image().file);
  });

  it('file:// writes what the Go runc shim writes, byte for byte, to a 0644 file in 0755 dirs it makes', async () => {
    // stdout only for the byte comparison (how two streams interleave is up to the scheduler, in Go too).
    const script = 'seq 1 20000; printf "no newline \\377\\000\\r\\n\\r"; i=0; while [ $i -lt 50 ]; do printf "%0200d\\n" $i; i=$((i+1)); done';
    const files: Record<string, string> = {};
    for (const runtime of [OUTRIGGER, RUNC_V2]) {
      const file = path.join(work(runtime), 'nested', 'dir', 'c.log');
      fs.mkdirSync(path.dirname(path.dirname(file)), { recursive: true });
      const r = await runWithLog(runtime, `file://${file}`, script);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toBe('');
      expect(fs.statSync(file).mode & 0o7777).toBe(0o644);
      expect(fs.statSync(path.dirname(file)).mode & 0o7777).toBe(0o755);
      files[runtime] = file;
    }
    const ours = fs.readFileSync(files[OUTRIGGER]!);
    const go = fs.readFileSync(files[RUNC_V2]!);
    expect(ours.length).toBeGreaterThan(100_000);
    expect(ours.equals(go)).toBe(true);

    // Both streams, and an existing file appended to: every line under ours, and nothing the Go
    // shim writes that ours does not. (Under load the Go shim drops the stderr lines of this
    // quickly exiting task for good: 1 run in 4–8 here, still missing 3 s later; it is logged.)
    const lines: Record<string, string[]> = {};
    for (const runtime of [OUTRIGGER, RUNC_V2]) {
      fs.writeFileSync(files[runtime]!, 'kept\n');
      const r = await runWithLog(runtime, `file://${files[runtime]}?maxFiles=3&other=x`, 'echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 3');
      expect(r.exitCode).toBe(3);
      lines[runtime] = fs.readFileSync(files[runtime]!, 'utf8').split('\n');
      expect(lines[runtime]![0]).toBe('kept');
    }
    expect(lines[OUTRIGGER]!.sort()).toEqual(['', 'err1', 'err2', 'kept', 'out1', 'out2']);
    // Line by line, duplicates counted: what the Go shim wrote must be a part of what ours wrote.
    const goMissed = [...lines[OUTRIGGER]!];
    const goOnly = lines[RUNC_V2]!.filter((line) => {
      const at = goMissed.indexOf(line);
      if (at === -1) return true;
      goMissed.splice(at, 1);
      return false;
    });
    expect(goOnly).toEqual([]);
    if (goMissed.length > 0) console.log(`io.containerd.runc.v2 did not write ${JSON.stringify(goMissed)} (ours wrote every line)`);
  });

  it('file:// with ?maxSize=10MB&maxFiles=20: 100 MB of output, every line exactly once, in order, none split', async () => {
    const file = work('rotated.log');
    const n = 12_500_000; // `seq 1 n` is 101,388,897 bytes
    const r = await ctd().run({ image: image().name, runtime: OUTRIGGER, flags: ['--log-uri', `file://${file}?maxSize=10MB&maxFiles=20`], args: ['seq', '1', String(n)], timeoutMs: 170_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const files = rotatedFilesOldestFirst(file);
    expect(files.length).toBe(11);
    expectSeqLines(files, n, 10_000_000);
  });

  it('binary:// with outrigger-log: CRI lines (P/F, stream, RFC3339Nano), rotated at maxSize without splitting a record', async () => {
    const file = work('cri.log');
    const script = 'echo hello; echo oops >&2; printf "%020000d\\n" 7; seq 1 3000; printf unfinished';
    const r = await runWithLog(OUTRIGGER, `binary://${OUTRIGGER_LOG}?path=${file}&format=cri&maxSize=32KiB&maxFiles=50`, script);
    expect(r.exitCode, r.stderr).toBe(0);
    const ts = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{1,9})?Z';
    await waitFor('the CRI log to be complete', () => (fs.existsSync(file) && fs.readFileSync(file, 'utf8').endsWith(' stdout P unfinished\n')) || undefined);
    const files = rotatedFilesOldestFirst(file);
    expect(files.length).toBeGreaterThan(2);
    for (const f of files) {
      const text = fs.readFileSync(f, 'utf8');
      expect(text.length).toBeLessThanOrEqual(32 * 1024);
      expect(text.endsWith('\n')).toBe(true);
    }
    const lines = files.map((f) => fs.readFileSync(f, 'utf8')).join('').split('\n').slice(0, -1);
    for (const l of lines) expect(l).toMatch(new RegExp(`^${ts} (stdout|stderr) [PF] `));
    const rest = (l: string) => l.split(' ').slice(2).join(' ');
    expect(lines.filter((l) => l.split(' ')[1] === 'stderr').map(rest)).toEqual(['F oops']);
    const stdout = lines.filter((l) => l.split(' ')[1] === 'stdout').map(rest);
    // 20000 bytes are cut at containerd's 16 KiB: one P piece and the F rest.
    expect(stdout.slice(0, 3).map((l) => [l[0], l.length - 2])).toEqual([['F', 5], ['P', 16384], ['F', 20000 - 16384]]);
    expect(stdout.slice(3, -1)).toEqual(Array.from({ length: 3000 }, (_, i) => `F ${i + 1}`));
    expect(stdout.at(-1)).toBe('P unfinished');
  });

  it('binary-v2:// with outrigger-log in JSON: one object per line, and the logger is gone after delete', async () => {
    const file = work('json.log');
    const id = uniqueId('v2json');
    const r = await runWithLog(OUTRIGGER, `binary-v2://${OUTRIGGER_LOG}?format=json&path=${file}`, 'echo hello json; echo oops >&2', id);
    expect(r.exitCode, r.stderr).toBe(0);
    const records = await waitFor('two JSON records', () => {
      const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
      const recs = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      return recs.length === 2 ? recs : undefined;
    });
    const ns = ctd().namespace;
    for (const rec of records) expect(typeof rec.time).toBe('number');
    const withoutTime = records.map(({ time: _time, ...rest }) => rest).sort((a, b) => String(a.stream).localeCompare(String(b.stream)));
    expect(withoutTime).toEqual([
      { level: 50, container: id, namespace: ns, stream: 'stderr', msg: 'oops' },
      { level: 30, container: id, namespace: ns, stream: 'stdout', msg: 'hello json' },
    ]);
    await waitFor('the shim and its logger to exit', () => (shimFor(ctd(), id) === undefined && loggerPids(OUTRIGGER_LOG).length === 0 ? true : undefined));
    expect(ctd().leftovers().processes.filter((p) => p.pid !== ctd().pid)).toEqual([]);
  });

  it('binary:// and binary-v2:// with a tiny shell logger: both streams arrive, argv and environment as the Go contract says', async () => {
    for (const scheme of ['binary', 'binary-v2']) {
      const out = work(`shell-${scheme}.log`);
      const bin = logger(`shell-logger-${scheme}`, `echo "$@" > "$2.argv"; /bin/cat /proc/$$/environ > "$2.env"; printf x >&5; exec 5>&-; /bin/cat <&4 >> "$2" & /bin/cat <&3 >> "$2"; wait`);
      const id = uniqueId('shell');
      const r = await runWithLog(OUTRIGGER, `${scheme}://${bin}?path=${out}&mode=plain`, 'echo to-stdout; echo to-stderr >&2', id);
      expect(r.exitCode, r.stderr).toBe(0);
      await waitFor(`${scheme}: both lines`, () => (fs.existsSync(out) && fs.readFileSync(out, 'utf8').split('\n').length === 3 ? true : undefined));
      expect(fs.readFileSync(out, 'utf8').split('\n').sort()).toEqual(['', 'to-stderr', 'to-stdout']);
      expect(fs.readFileSync(`${out}.argv`, 'utf8')).toBe(`path ${out} mode plain\n`);
      expect(fs.readFileSync(`${out}.env`, 'utf8').split('\0').filter(Boolean).sort()).toEqual([`CONTAINER_ID=${id}`, `CONTAINER_NAMESPACE=${ctd().namespace}`]);
    }
  });

  it('exec processes log too: file:// and a dead binary:// logger whose fallback file carries the exec id', async () => {
    const id = uniqueId('execlog');
    const initLog = work(`${id}-init.log`);
    const execLog = work(`${id}-exec.log`);
    const r = await ctd().run({ image: image().name, id, runtime: OUTRIGGER, detach: true, flags: ['--log-uri', `file://${initLog}`], args: ['sh', '-c', 'echo init-started; exec sleep 1000'] });
    expect(r.exitCode, r.stderr).toBe(0);
    // `--fifo-dir=` (empty) keeps the harness from adding its FIFO dir, which ctr refuses next to --log-uri.
    const e1 = await ctd().ctr(['tasks', 'exec', '--fifo-dir=', '--exec-id', 'e1', '--log-uri', `file://${execLog}`, id, 'sh', '-c', 'echo from-exec; echo exec-err >&2; exit 2']);
    expect(e1.exitCode, e1.stderr).toBe(2);
    expect(fs.readFileSync(execLog, 'utf8').split('\n').sort()).toEqual(['', 'exec-err', 'from-exec']);
    const quitter = logger('exec-quitter', 'exit 0');
    const e2 = await ctd().ctr(['tasks', 'exec', '--fifo-dir=', '--exec-id', 'e2', '--log-uri', `binary://${quitter}`, id, 'sh', '-c', 'echo exec-fallback']);
    expect(e2.exitCode, e2.stderr).toBe(0);
    const fallback = path.join(ctd().paths.state, 'io.containerd.runtime.v2.task', ctd().namespace, `${id}.e2.stdio-fallback.log`);
    expect(fs.readFileSync(fallback, 'utf8')).toBe('exec-fallback\n');
    await ctd().ctr(['tasks', 'kill', '--signal', 'SIGKILL', id], { check: true });
    await waitFor('the task to stop', async () => ((await taskStatus(ctd(), id)) === 'STOPPED' ? true : undefined));
    await ctd().ctr(['tasks', 'delete', id], { check: true });
    await ctd().ctr(['containers', 'rm', id], { check: true });
    expect(fs.readFileSync(initLog, 'utf8')).toBe('init-started\n');
  });

  it('a logger that exits at once: the container still runs to completion and its output is in the fallback file', async () => {
    const bin = logger('quitter', 'exit 0');
    const id = uniqueId('fallback');
    // 2 MiB is far more than a pipe holds: this only finishes if the shim drains the pipes.
    const r = await runWithLog(OUTRIGGER, `binary://${bin}`, 'head -c 2097152 /dev/zero; echo; echo done >&2; exit 4', id);
    expect(r.exitCode, r.stderr).toBe(4);
    const fallback = path.join(ctd().paths.state, 'io.containerd.runtime.v2.task', ctd().namespace, `${id}.stdio-fallback.log`);
    const text = fs.readFileSync(fallback, 'latin1');
    expect(text.length).toBe(2097152 + 1 + 5);
    expect(text.replace('done\n', '')).toBe(`${'\0'.repeat(2097152)}\n`);
    await waitFor('the warning in the shim log', () => fs.readFileSync(ctd().logFile, 'utf8').includes(fallback) || undefined);
  });

  it('outrigger-log with a bad argument under binary-v2://: create fails, quoting the logger\'s own error', async () => {
    const id = uniqueId('badarg');
    const r = await runWithLog(OUTRIGGER, `binary-v2://${OUTRIGGER_LOG}?path=${work('bad.log')}&colour=red`, 'echo never', id);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(`create ${id}: binary-v2 logger ${OUTRIGGER_LOG} did not call ready: it exited (status 2)`);
    expect(r.stderr).toContain('unknown key "colour"');
  });

  it('a logger that never signals: create fails after the timeout with a message naming the logger, nothing left behind', async () => {
    const pidFile = path.join(ctd().dir, 'mute.pid');
    const bin = logger('mute', `echo $$ > ${pidFile}; exec /bin/sleep 1000`);
    const id = uniqueId('mute');
    const r = await runWithLog(OUTRIGGER, `binary-v2://${bin}?x=y`, 'echo never', id);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(`create ${id}: binary-v2 logger ${bin} did not signal ready within 3s`);
    await waitFor('the shim to exit', () => (shimFor(ctd(), id) === undefined ? true : undefined));
    expect(fs.existsSync(`/proc/${fs.readFileSync(pidFile, 'utf8').trim()}`)).toBe(false); // the logger was killed
    const left = ctd().leftovers();
    expect(left.processes.filter((p) => p.pid !== ctd().pid)).toEqual([]);
    expect(left.runtimeEntries).toEqual([]);
    expect(left.mounts).toEqual([]);
  });
});

describe('logger restarts (OUTRIGGER_LOGGER_RESTARTS=2)', () => {
  it('a logger that dies is started again on the same pipes after a back-off, and the shim log says so', async () => {
    const own = await startContainerd({ binDirs: [binDir], env: { OUTRIGGER_LOGGER_RESTARTS: '2' } });
    await own.importImage(image().file);
    const starts = path.join(own.dir, 'starts');
    const out = path.join(own.dir, 'restarted.log');
    const bin = path.join(own.dir, 'one-line-logger');
    // Each logger instance takes one line and dies.
    fs.writeFileSync(bin, `#!/bin/sh\necho start >> ${starts}\nprintf x >&5\nexec 5>&-\nread line <&3\necho "$line" >> ${out}\nexit 1\n`, { mode: 0o755 });
    fs.writeFileSync(starts, '');
    // The container sees the log host's file through a bind mount, to know when a logger is back.
    const script = 'echo one; until [ "$(wc -l < /host/starts)" -ge 2 ]; do sleep 0.05; done; echo two; until [ "$(wc -l < /host/starts)" -ge 3 ]; do sleep 0.05; done; echo three';
    const r = await own.run({
      image: image().name,
      runtime: OUTRIGGER,
      flags: ['--log-uri', `binary://${bin}`, '--mount', `type=bind,src=${own.dir},dst=/host,options=rbind:ro`],
      args: ['sh', '-c', script],
    });
    expect(r.exitCode, r.stderr).toBe(0);
    await waitFor('three lines from three loggers', () => (fs.existsSync(out) && fs.readFileSync(out, 'utf8') === 'one\ntwo\nthree\n' ? true : undefined));
    expect(fs.readFileSync(starts, 'utf8').split('\n').filter(Boolean)).toHaveLength(3);
    const shimLog = fs.readFileSync(own.logFile, 'utf8');
    expect(shimLog.match(/logger restarted/g)?.length).toBe(2);
  });
});
