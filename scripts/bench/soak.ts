/**
 * Load and soak for containerd-shim-outrigger-v2: waves of containers started and removed
 * against a private containerd for N minutes, sampling what leaks after each wave.
 *
 *   npm run soak -- --minutes N [--wave 100] [--concurrency 10] [--out FILE]
 *
 * One long-lived shim serves a CRI-style sandbox group for the whole run: an anchor container
 * keeps it alive and half of every wave joins its group (io.kubernetes.cri.sandbox-id), so
 * RSS and fd growth of one shim across thousands of containers is visible; the other half runs
 * in shims of their own, which must all be gone after the wave. Every container prints its
 * own line and exits with its own code, and each wave also runs execs in the anchor: a wrong
 * output or exit code is a lost case.
 *
 * After each wave (and a settle second) it samples: the group shim's RSS and open fds, zombie
 * children of any of our shims, mounts below the instance dir, shims still running besides the
 * group's, and containerd's RSS. It fails (exit 1) on:
 *   - any lost case, any zombie, any extra shim still there 30 s after its wave,
 *   - mounts differing from the first sample (the anchor's rootfs only),
 *   - shim fds above the first sample + FD_TOLERANCE,
 *   - shim RSS (lowest of the last three samples, to step over GC timing) above the first
 *     sample × RSS_TOLERANCE_RATIO + RSS_TOLERANCE_MIB.
 * The first sample is taken after one warm-up wave (JIT, pools and caches filled).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { DIST_BIN, PrivateContainerd, uniqueId } from '../dev-containerd/private-containerd.ts';
import { buildTestImages } from '../test-images.ts';

export const FD_TOLERANCE = 4;
export const RSS_TOLERANCE_RATIO = 1.25;
export const RSS_TOLERANCE_MIB = 16;
const OUTRIGGER = 'io.containerd.outrigger.v2';

export interface SoakOptions {
  /** Stop starting waves after this long (at least one wave runs beyond the warm-up). */
  readonly minutes?: number;
  /** Or an exact number of measured waves (after the warm-up); wins over minutes. */
  readonly waves?: number;
  readonly perWave: number;
  readonly concurrency: number;
  readonly execsPerWave?: number;
  readonly log?: (line: string) => void;
}

export interface WaveSample {
  readonly wave: number;
  readonly at: string;
  readonly containers: number;
  readonly lost: number;
  readonly shimRssMiB: number;
  readonly shimFds: number;
  readonly zombies: number;
  readonly mounts: number;
  readonly extraShims: number;
  readonly containerdRssMiB: number;
  readonly waveSeconds: number;
}

export interface SoakResult {
  readonly samples: readonly WaveSample[];
  readonly tried: number;
  readonly lost: number;
  readonly failures: readonly string[];
  readonly limits: { readonly fdTolerance: number; readonly rssRatio: number; readonly rssMiB: number };
}

function procStatusKiB(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function fdCount(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

interface Proc {
  readonly pid: number;
  readonly ppid: number;
  readonly state: string;
  readonly argv: readonly string[];
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      out.push({ pid: Number(entry), ppid: Number(fields[1]), state: fields[0] ?? '', argv });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function ourShims(ctd: PrivateContainerd, all: readonly Proc[]): Proc[] {
  return all.filter((p) => p.argv[0]?.endsWith('containerd-shim-outrigger-v2') && p.argv.includes(ctd.address));
}

function mountsBelow(dir: string): number {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => (l.split(' ')[4] ?? '').startsWith(`${dir}/`)).length;
}

/** A bin dir with this moment's SEA under the shim's name: dist/ may be rebuilt during a long run. */
function pinnedShimDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soak-bin-'));
  const source = fs.realpathSync(path.join(DIST_BIN, 'outrigger'));
  try {
    fs.linkSync(source, path.join(dir, 'outrigger'));
  } catch {
    fs.copyFileSync(source, path.join(dir, 'outrigger'));
    fs.chmodSync(path.join(dir, 'outrigger'), 0o755);
  }
  fs.symlinkSync('outrigger', path.join(dir, 'containerd-shim-outrigger-v2'));
  return dir;
}

async function pool<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        await fn(items[i]!, i);
      }
    }),
  );
}

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const binDir = pinnedShimDir();
  const imageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'soak-image-'));
  const ctd = await PrivateContainerd.start({ binDirs: [binDir] });
  const samples: WaveSample[] = [];
  const failures: string[] = [];
  let tried = 0;
  let lost = 0;
  try {
    const [image] = await buildTestImages({ outDir: imageDir, media: ['tar'], salt: `soak-${process.pid}` });
    await ctd.importImage(image!.file);
    const pod = uniqueId('soakpod');
    const group = ['--annotation', `io.kubernetes.cri.sandbox-id=${pod}`];
    const anchor = uniqueId('anchor');
    const started = await ctd.run({ image: image!.name, id: anchor, runtime: OUTRIGGER, detach: true, flags: group, args: ['sleep', '1000000'] });
    if (started.exitCode !== 0) throw new Error(`anchor container did not start: ${started.stderr}`);
    const groupShim = ourShims(ctd, processes()).find((p) => p.argv.includes(anchor));
    if (!groupShim) throw new Error('the anchor container has no outrigger shim');
    // The grouped half of each wave must really share the anchor's shim, or its RSS says nothing.
    const probe = uniqueId('probe');
    const probed = await ctd.run({ image: image!.name, id: probe, runtime: OUTRIGGER, detach: true, flags: group, args: ['sleep', '1000'] });
    if (probed.exitCode !== 0) throw new Error(`grouping probe did not start: ${probed.stderr}`);
    const shimsNow = ourShims(ctd, processes());
    if (shimsNow.length !== 1 || shimsNow[0]!.pid !== groupShim.pid) {
      throw new Error(`a container of the sandbox group got its own shim (${shimsNow.map((p) => p.pid).join(', ')}; group shim ${groupShim.pid})`);
    }
    await ctd.ctr(['tasks', 'kill', '--signal', 'SIGKILL', probe]);
    for (let i = 0; i < 100 && !(await ctd.ctr(['tasks', 'ls'])).stdout.split('\n').some((l) => l.startsWith(probe) && l.includes('STOPPED')); i++) await sleep(100);
    await ctd.ctr(['tasks', 'delete', probe]);
    await ctd.ctr(['containers', 'rm', probe]);

    const deadline = Date.now() + (opts.minutes ?? 0) * 60_000;
    const measuredWaves = opts.waves;
    for (let wave = 0; ; wave++) {
      // wave 0 is the warm-up; then `waves` more, or until the deadline (at least one).
      if (wave > 0) {
        if (measuredWaves !== undefined ? wave > measuredWaves : wave > 1 && Date.now() >= deadline) break;
      }
      const t0 = performance.now();
      let waveLost = 0;
      const ids = Array.from({ length: opts.perWave }, (_, i) => ({ id: uniqueId(`w${wave}`), grouped: i % 2 === 0, code: (i % 200) + 1 }));
      await pool(ids, opts.concurrency, async ({ id, grouped, code }) => {
        tried++;
        const r = await ctd.run({
          image: image!.name,
          id,
          runtime: OUTRIGGER,
          ...(grouped ? { flags: group } : {}),
          args: ['sh', '-c', `echo ${id}; exit ${code}`],
          timeoutMs: 180_000,
        });
        if (r.stdout !== `${id}\n` || r.exitCode !== code) {
          waveLost++;
          log(`wave ${wave}: ${id} lost: exit ${r.exitCode} (want ${code}), stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr.slice(0, 300))}`);
        }
      });
      const execs = Array.from({ length: opts.execsPerWave ?? 5 }, (_, i) => i);
      await pool(execs, opts.concurrency, async (i) => {
        tried++;
        const r = await ctd.ctr(['tasks', 'exec', '--exec-id', `w${wave}x${i}`, anchor, 'sh', '-c', `echo x${i}; exit ${i + 3}`], { timeoutMs: 120_000 });
        if (r.stdout !== `x${i}\n` || r.exitCode !== i + 3) {
          waveLost++;
          log(`wave ${wave}: exec ${i} lost: exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr.slice(0, 300))}`);
        }
      });
      lost += waveLost;
      // Ungrouped shims leave after their container's delete; give them a moment, then count.
      let extra: Proc[] = [];
      for (let i = 0; i < 300; i++) {
        extra = ourShims(ctd, processes()).filter((p) => p.pid !== groupShim.pid);
        if (extra.length === 0) break;
        await sleep(100);
      }
      await sleep(1_000);
      const all = processes();
      const shimPids = new Set(ourShims(ctd, all).map((p) => p.pid));
      const sample: WaveSample = {
        wave,
        at: new Date().toISOString(),
        containers: ids.length,
        lost: waveLost,
        shimRssMiB: Math.round((procStatusKiB(groupShim.pid, 'VmRSS') / 1024) * 10) / 10,
        shimFds: fdCount(groupShim.pid),
        zombies: all.filter((p) => p.state === 'Z' && shimPids.has(p.ppid)).length,
        mounts: mountsBelow(ctd.dir),
        extraShims: extra.length,
        containerdRssMiB: Math.round((procStatusKiB(ctd.pid ?? 0, 'VmRSS') / 1024) * 10) / 10,
        waveSeconds: Math.round((performance.now() - t0) / 100) / 10,
      };
      if (!shimPids.has(groupShim.pid)) failures.push(`wave ${wave}: the group shim ${groupShim.pid} is gone`);
      samples.push(sample);
      log(`wave ${wave}: ${JSON.stringify(sample)}`);
      if (sample.zombies > 0) failures.push(`wave ${wave}: ${sample.zombies} zombie children of our shims`);
      if (sample.extraShims > 0) failures.push(`wave ${wave}: ${sample.extraShims} shims still running 30 s after their containers were removed`);
      if (failures.length > 0 && !shimPids.has(groupShim.pid)) break;
    }

    const measured = samples.slice(1);
    const base = measured[0];
    if (base !== undefined) {
      for (const s of measured) {
        if (s.mounts !== base.mounts) failures.push(`wave ${s.wave}: ${s.mounts} mounts below the instance, first sample had ${base.mounts}`);
      }
      const last = measured[measured.length - 1]!;
      if (last.shimFds > base.shimFds + FD_TOLERANCE) failures.push(`group shim fds grew ${base.shimFds} → ${last.shimFds} (tolerance +${FD_TOLERANCE})`);
      const settledRss = Math.min(...measured.slice(-3).map((s) => s.shimRssMiB));
      const rssLimit = base.shimRssMiB * RSS_TOLERANCE_RATIO + RSS_TOLERANCE_MIB;
      if (measured.length >= 2 && settledRss > rssLimit) {
        failures.push(`group shim RSS grew ${base.shimRssMiB} → ${settledRss} MiB (limit ${rssLimit.toFixed(1)} MiB)`);
      }
    }
    if (lost > 0) failures.push(`${lost} of ${tried} containers/execs lost (wrong output or exit code)`);

    await ctd.ctr(['tasks', 'kill', '--signal', 'SIGKILL', anchor]);
    for (let i = 0; i < 100; i++) {
      const ls = await ctd.ctr(['tasks', 'ls']);
      if (ls.stdout.split('\n').some((l) => l.startsWith(anchor) && l.includes('STOPPED'))) break;
      await sleep(100);
    }
    await ctd.ctr(['tasks', 'delete', anchor]);
    await ctd.ctr(['containers', 'rm', anchor]);
  } finally {
    try {
      await ctd.stop();
    } catch (err) {
      failures.push(`teardown: ${err instanceof Error ? err.message : String(err)}`);
    }
    fs.rmSync(imageDir, { recursive: true, force: true });
    fs.rmSync(binDir, { recursive: true, force: true });
  }
  return { samples, tried, lost, failures, limits: { fdTolerance: FD_TOLERANCE, rssRatio: RSS_TOLERANCE_RATIO, rssMiB: RSS_TOLERANCE_MIB } };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '10' },
      wave: { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '10' },
      out: { type: 'string' },
    },
    strict: true,
  });
  const minutes = Number(values.minutes);
  const perWave = Number(values.wave);
  const concurrency = Number(values.concurrency);
  for (const [k, v] of Object.entries({ minutes, wave: perWave, concurrency })) {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number`);
  }
  const result = await runSoak({ minutes, perWave, concurrency });
  const summary = { kind: 'soak', minutes, perWave, concurrency, ...result };
  const text = `${JSON.stringify(summary, null, 2)}\n`;
  if (values.out) fs.writeFileSync(values.out, text);
  process.stdout.write(text);
  const logFile = process.env.OUTRIGGER_RELIABILITY_LOG;
  if (logFile) {
    fs.appendFileSync(
      logFile,
      `${JSON.stringify({ kind: 'soak', suite: 'soak', property: `${perWave}-container waves for ${minutes} min (${result.samples.length} waves)`, tried: result.tried, survived: result.tried - result.lost, lost: result.lost, at: new Date().toISOString(), failures: result.failures, samples: result.samples })}\n`,
    );
  }
  if (result.failures.length > 0) {
    process.stderr.write(`soak failed:\n${result.failures.map((f) => `  ${f}`).join('\n')}\n`);
    process.exit(1);
  }
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
