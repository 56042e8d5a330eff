/**
 * Executes a benchmark declaration: setup, a check run, warm-up and measured rounds in interleaved
 * order, teardown; returns a JSON-ready result.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { measuredRun, type RunMeasurement } from './measured-spawn.ts';
import type {
  EnvOverrides,
  MachineFacts,
  PrintedMetric,
  RunContext,
  SizeBenchmark,
  SizeResult,
  TimedBenchmark,
  TimedResult,
  VariantResult,
} from './model.ts';
import { summarize, type Summary } from './stats.ts';

/**
 * The order of variants in each round: round r is the list rotated left by r (A B C, B C A,
 * C A B, …), so every variant takes every position equally often and background load, cache
 * state and thermal drift fall on all variants alike.
 */
export function interleavedOrder(variantCount: number, rounds: number): number[][] {
  if (!Number.isInteger(variantCount) || variantCount < 1) throw new Error(`bench: variant count ${variantCount} must be a positive integer`);
  if (!Number.isInteger(rounds) || rounds < 0) throw new Error(`bench: rounds ${rounds} must be a non-negative integer`);
  return Array.from({ length: rounds }, (_, r) => Array.from({ length: variantCount }, (_, i) => (i + r) % variantCount));
}

/** process.env with the benchmark's and then the variant's overrides applied. */
export function resolveEnv(base: NodeJS.ProcessEnv, ...layers: (EnvOverrides | undefined)[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer ?? {})) {
      if (v === null) delete env[k];
      else env[k] = v;
    }
  }
  return env;
}

/** How the overrides read in a report: `FOO unset, BAR=x`. */
export function describeEnv(...layers: (EnvOverrides | undefined)[]): string | undefined {
  const merged = new Map<string, string | null>();
  for (const layer of layers) for (const [k, v] of Object.entries(layer ?? {})) merged.set(k, v);
  const parts = [...merged].map(([k, v]) => (v === null ? `${k} unset` : `${k}=${v}`));
  return parts.length ? parts.join(', ') : undefined;
}

const repoRoot = path.resolve(import.meta.dirname, '../..');

/** argv as a reader would type it in the repository root. */
export function displayCommand(argv: readonly string[], root = repoRoot): string {
  return argv
    .map((a) => (a.startsWith(`${root}/`) ? path.relative(root, a) : a))
    .map((a) => (/^[\w./=:@%+-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`))
    .join(' ');
}

export function machineFacts(node: string): MachineFacts {
  const cpus = os.cpus();
  let osName = os.type();
  try {
    const release = execFileSync('sh', ['-c', '. /etc/os-release && echo "$PRETTY_NAME"'], { encoding: 'utf8' }).trim();
    if (release) osName = release;
  } catch {
    // not every host has /etc/os-release; the kernel line still identifies it
  }
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    os: osName,
    node,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

export interface RunOptions extends RunContext {
  /** Overrides the benchmark's own round count. */
  rounds?: number;
  machine: MachineFacts;
  log: (line: string) => void;
}

/**
 * The metrics a command printed: its last non-empty stdout line must be a JSON object with a
 * finite number under every metric's key.
 */
export function parsePrintedMetrics(stdout: string, metrics: readonly PrintedMetric[], command: string): Record<string, number> {
  const last = stdout.trimEnd().split('\n').at(-1)?.trim() ?? '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(last);
  } catch {
    throw new Error(`bench: \`${command}\` should print a JSON object as its last line, printed ${JSON.stringify(last.slice(0, 120))}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`bench: \`${command}\` printed ${JSON.stringify(last.slice(0, 120))}, not a JSON object`);
  }
  const values: Record<string, number> = {};
  for (const m of metrics) {
    const v = (parsed as Record<string, unknown>)[m.key];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new Error(`bench: \`${command}\` printed no number for "${m.key}" (${m.label}): ${JSON.stringify(last.slice(0, 120))}`);
    }
    values[m.key] = v;
  }
  return values;
}

interface CheckedOutput {
  /** All of stdout. */
  stdout: string;
  /** First line on stdout. */
  output?: string;
  /** Anything on stderr: a healthy start-up prints nothing there (e.g. "Code cache data rejected"). */
  stderr?: string;
}

/** One unmeasured run that proves the variant works and shows what it prints. */
function checkRun(argv: readonly string[], env: Record<string, string>): CheckedOutput {
  const [file, ...args] = argv;
  if (!file) throw new Error('bench: empty command line');
  const r = spawnSync(file, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  if (r.error || r.status !== 0) {
    const how = r.error?.message ?? (r.signal ? `signal ${r.signal}` : `exit code ${r.status}`);
    throw new Error(`bench: check run of \`${displayCommand(argv)}\` failed (${how}): ${r.stderr.trim().slice(0, 500)}`);
  }
  const first = r.stdout.split('\n', 1)[0]?.trim();
  const stderr = r.stderr.trim().replace(/\s+/g, ' ');
  return { stdout: r.stdout, ...(first ? { output: first.slice(0, 80) } : {}), ...(stderr ? { stderr: stderr.slice(0, 200) } : {}) };
}

export async function runTimed(bench: TimedBenchmark, opts: RunOptions): Promise<TimedResult> {
  const labels = bench.variants.map((v) => v.label);
  for (const role of [bench.ours, bench.peer]) {
    if (!labels.includes(role)) throw new Error(`bench ${bench.name}: ours/peer label "${role}" is not one of its variants (${labels.join(', ')})`);
  }
  if (new Set(labels).size !== labels.length) throw new Error(`bench ${bench.name}: variant labels must be unique`);
  for (const v of bench.variants) {
    if (v.peer !== undefined && !labels.includes(v.peer)) throw new Error(`bench ${bench.name}: peer "${v.peer}" of variant "${v.label}" is not one of its variants`);
  }
  const metrics = bench.metrics ?? [];
  if (new Set(metrics.map((m) => m.key)).size !== metrics.length) throw new Error(`bench ${bench.name}: metric keys must be unique`);
  const rounds = opts.rounds ?? (opts.quick ? bench.quickRounds : bench.rounds);
  const warmupRounds = opts.quick ? Math.min(1, bench.warmupRounds) : bench.warmupRounds;

  const notes = new Map<string, string>();
  const setUp: typeof bench.variants[number][] = [];
  try {
    for (const v of bench.variants) {
      setUp.push(v);
      if (v.setup) {
        opts.log(`${bench.name}: setup ${v.label}`);
        const note = await v.setup(opts);
        if (note) notes.set(v.label, note);
      }
    }
    const envs = bench.variants.map((v) => resolveEnv(process.env, bench.env, v.env));
    const checks = bench.variants.map((v, i) => checkRun(v.argv, envs[i]!));
    // A command that does not print its metrics fails here, before any time is spent measuring.
    if (metrics.length) bench.variants.forEach((v, i) => parsePrintedMetrics(checks[i]!.stdout, metrics, displayCommand(v.argv)));

    const samples = bench.variants.map(() => [] as RunMeasurement[]);
    const printed = bench.variants.map(() => [] as Record<string, number>[]);
    const stdoutFile = metrics.length ? path.join(os.tmpdir(), `outrigger-bench-stdout-${process.pid}-${process.hrtime.bigint()}`) : undefined;
    const load0 = os.loadavg()[0]!;
    const order = interleavedOrder(bench.variants.length, warmupRounds + rounds);
    order.forEach((round, r) => {
      for (const i of round) {
        const argv = bench.variants[i]!.argv;
        let m: RunMeasurement;
        let values: Record<string, number> | undefined;
        try {
          m = measuredRun(argv, envs[i]!, stdoutFile ? { stdoutFile } : {});
          if (stdoutFile) values = parsePrintedMetrics(fs.readFileSync(stdoutFile, 'utf8'), metrics, displayCommand(argv));
        } finally {
          if (stdoutFile) fs.rmSync(stdoutFile, { force: true });
        }
        if (r >= warmupRounds) {
          samples[i]!.push(m);
          if (values) printed[i]!.push(values);
        }
      }
      const done = r + 1 - warmupRounds;
      if (done > 0 && (done % 25 === 0 || done === rounds)) opts.log(`${bench.name}: round ${done}/${rounds}`);
    });
    const load1 = os.loadavg()[0]!;
    const benchEnv = describeEnv(bench.env);

    const variants: VariantResult[] = bench.variants.map((v, i) => {
      const s = samples[i]!;
      const env = describeEnv(v.env);
      const stderr = checks[i]!.stderr;
      const note = [v.note, notes.get(v.label), stderr && `stderr: ${stderr}`].filter(Boolean).join('; ');
      const summaries: Record<string, Summary> = {};
      for (const metric of metrics) summaries[metric.key] = summarize(printed[i]!.map((p) => p[metric.key]!));
      return {
        label: v.label,
        command: v.display ?? displayCommand(v.argv),
        ...(env ? { env } : {}),
        ...(note ? { note } : {}),
        // A metric command's first line is one unmeasured reading; the table has the measured ones.
        ...(checks[i]!.output && !metrics.length ? { output: checks[i]!.output } : {}),
        ...(v.peer !== undefined ? { peer: v.peer } : {}),
        wallMs: summarize(s.map((m) => m.wallMs)),
        cpuMs: summarize(s.map((m) => m.cpuMs)),
        maxRssKiB: summarize(s.map((m) => m.maxRssKiB)),
        ...(metrics.length ? { metrics: summaries } : {}),
      };
    });
    return {
      kind: 'timed',
      name: bench.name,
      title: bench.title,
      what: bench.what,
      ours: bench.ours,
      peer: bench.peer,
      machine: opts.machine,
      quick: opts.quick,
      ...(benchEnv ? { env: benchEnv } : {}),
      rounds,
      warmupRounds,
      load: [load0, load1],
      ...(metrics.length ? { metrics: metrics.map((m) => ({ ...m })) } : {}),
      variants,
    };
  } finally {
    for (const v of setUp.reverse()) {
      try {
        await v.teardown?.();
      } catch (err) {
        opts.log(`${bench.name}: teardown of ${v.label} failed: ${(err as Error).message}`);
      }
    }
  }
}

export async function runSize(bench: SizeBenchmark, opts: RunOptions): Promise<SizeResult> {
  const items: SizeResult['items'] = [];
  for (const item of bench.items) {
    opts.log(`${bench.name}: ${item.label}`);
    const reading = await item.bytes(opts);
    items.push({ label: item.label, bytes: reading.bytes ?? null, ...(reading.note ? { note: reading.note } : {}) });
  }
  return {
    kind: 'size',
    name: bench.name,
    title: bench.title,
    what: bench.what,
    ours: bench.ours,
    peer: bench.peer,
    machine: opts.machine,
    quick: opts.quick,
    items,
  };
}
