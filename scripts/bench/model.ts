/**
 * Benchmarks are data: a suite file exports one of these, the runner executes it, and the
 * result (plain JSON, kept in docs/bench/NAME.json) is what the report and the chart are made from.
 */
import type { Summary } from './stats.ts';

/** Environment changes over the runner's own environment; null removes the variable. */
export type EnvOverrides = Readonly<Record<string, string | null>>;

export interface RunContext {
  quick: boolean;
}

export interface Variant {
  /** Row label in the table and the chart; unique within its benchmark. */
  label: string;
  argv: readonly string[];
  /** How the command reads in the report when argv holds throw-away paths. */
  display?: string;
  env?: EnvOverrides;
  /** Runs once before the first round. A returned string is shown as the variant's note. */
  setup?: (ctx: RunContext) => Promise<string | void> | string | void;
  /** Runs once after the last round, also when a round failed. */
  teardown?: () => Promise<void> | void;
  note?: string;
  /** Label of the variant this row is compared with; default the benchmark's peer. */
  peer?: string;
}

/**
 * A number the command measures itself and prints, for what the runner cannot see from outside
 * (a rate, a server's CPU time). The command's last line on stdout is a JSON object holding it.
 */
export interface PrintedMetric {
  /** Key in that JSON object. */
  key: string;
  /** Column heading, unit included: `State calls/s`. */
  label: string;
  better: 'higher' | 'lower';
}

export interface TimedBenchmark {
  kind: 'timed';
  name: string;
  title: string;
  /** Markdown paragraph: what is measured and why. */
  what: string;
  env?: EnvOverrides;
  variants: readonly Variant[];
  /**
   * Numbers each run prints. When present the first is the headline: the table, chart and
   * ratios report these instead of wall time (still kept in the result, with CPU and RSS).
   */
  metrics?: readonly PrintedMetric[];
  /** Labels of our variant and of the one we compare against. */
  ours: string;
  peer: string;
  rounds: number;
  quickRounds: number;
  warmupRounds: number;
}

export interface SizeItem {
  label: string;
  /** Bytes, or undefined when it was not measured in this run (the note says why). */
  bytes: (ctx: RunContext) => Promise<SizeReading> | SizeReading;
}

export interface SizeReading {
  bytes?: number;
  note?: string;
}

export interface SizeBenchmark {
  kind: 'size';
  name: string;
  title: string;
  what: string;
  items: readonly SizeItem[];
  ours: string;
  peer: string;
}

export type Benchmark = TimedBenchmark | SizeBenchmark;

export interface MachineFacts {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  os: string;
  node: string;
  date: string;
}

export interface VariantResult {
  label: string;
  command: string;
  env?: string;
  note?: string;
  /** First line the command printed in the check run before measuring. */
  output?: string;
  /** The variant's own comparison row, when it is not the benchmark's peer. */
  peer?: string;
  wallMs: Summary;
  cpuMs: Summary;
  maxRssKiB: Summary;
  /** Per PrintedMetric key, the numbers the measured runs printed. */
  metrics?: Record<string, Summary>;
}

interface ResultBase {
  name: string;
  title: string;
  what: string;
  ours: string;
  peer: string;
  machine: MachineFacts;
  quick: boolean;
}

export interface TimedResult extends ResultBase {
  kind: 'timed';
  /** Environment changes for every variant (a variant's own `env` adds to them). */
  env?: string;
  rounds: number;
  warmupRounds: number;
  /** 1-minute load average just before and just after the rounds. */
  load: [number, number];
  metrics?: PrintedMetric[];
  variants: VariantResult[];
}

export interface SizeResult extends ResultBase {
  kind: 'size';
  items: { label: string; bytes: number | null; note?: string }[];
}

export type BenchmarkResult = TimedResult | SizeResult;
