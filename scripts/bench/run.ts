/**
 * npm run bench [-- --only NAME[,NAME]] [--rounds N] [--quick] [--out DIR] [--list] [--report-only]
 *
 * Runs the suites, keeps each result as DIR/bench/NAME.json + NAME.svg and regenerates
 * DIR/benchmarks.md from every result there (so --only refreshes one section and keeps the rest).
 * DIR is docs/ for a full run; --quick (few rounds, < 1 min) writes to a temporary directory
 * unless --out is given, so a smoke run never replaces the published numbers. --report-only
 * measures nothing and redraws the report and charts from the stored results.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchmarkResult } from './model.ts';
import { PINNED_NODE, ROOT } from './paths.ts';
import { formatMetric, formatRatio, renderReport } from './report-markdown.ts';
import { benchmarksSection } from '../reliability-table.ts';
import { resultChartSvg } from './result-chart.ts';
import { machineFacts, runSize, runTimed } from './runner.ts';
import { ratio } from './stats.ts';
import { SUITES } from './suites/index.ts';

const USAGE = `usage: npm run bench -- [--only NAME[,NAME…]] [--rounds N] [--quick] [--out DIR] [--list] [--report-only]
suites: ${SUITES.map((s) => s.name).join(', ')}`;

function fail(message: string): never {
  console.error(`bench: ${message}\n${USAGE}`);
  process.exit(2);
}

function parse() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        only: { type: 'string', multiple: true },
        rounds: { type: 'string' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string' },
        list: { type: 'boolean', default: false },
        'report-only': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  const names = (values.only ?? []).flatMap((o) => o.split(',')).map((n) => n.trim()).filter(Boolean);
  const known = new Set(SUITES.map((s) => s.name));
  for (const n of names) if (!known.has(n)) fail(`unknown suite "${n}"`);
  let rounds: number | undefined;
  if (values.rounds !== undefined) {
    rounds = Number(values.rounds);
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > 10_000) fail(`--rounds must be an integer 1…10000, got "${values.rounds}"`);
  }
  const out = values.out ? path.resolve(values.out) : values.quick ? path.join(os.tmpdir(), 'outrigger-bench-quick') : path.join(ROOT, 'docs');
  return { names, rounds, quick: values.quick, out, list: values.list, help: values.help, reportOnly: values['report-only'] };
}

function resultSummary(r: BenchmarkResult): string {
  const head = r.kind === 'timed' ? r.metrics?.[0] : undefined;
  if (r.kind === 'timed' && head) {
    const median = (label: string) => r.variants.find((v) => v.label === label)?.metrics?.[head.key]?.median ?? Number.NaN;
    const rows = r.variants.map((v) => {
      const cols = (r.metrics ?? []).map((m) => `${m.label} ${formatMetric(v.metrics?.[m.key]?.median ?? Number.NaN)}`);
      const vs = formatRatio(ratio(median(v.label), median(v.peer ?? r.peer)));
      return `  ${v.label.padEnd(34)} ${cols.join('  ')}  vs ${v.peer ?? r.peer}: ${vs}`;
    });
    return rows.join('\n');
  }
  if (r.kind === 'timed') {
    const ours = r.variants.find((v) => v.label === r.ours)!;
    const peer = r.variants.find((v) => v.label === r.peer)!;
    const rows = r.variants.map((v) => `  ${v.label.padEnd(34)} median ${v.wallMs.median.toFixed(2).padStart(7)} ms  min ${v.wallMs.min.toFixed(2).padStart(7)}  p90 ${v.wallMs.p90.toFixed(2).padStart(7)}  cpu ${v.cpuMs.median.toFixed(2).padStart(7)}  rss ${(v.maxRssKiB.median / 1024).toFixed(1).padStart(6)} MiB`);
    return [...rows, `  ${r.ours} ÷ ${r.peer}: ${formatRatio(ratio(ours.wallMs.median, peer.wallMs.median))}`].join('\n');
  }
  return r.items.map((i) => `  ${i.label.padEnd(34)} ${i.bytes === null ? `– (${i.note ?? ''})` : i.bytes.toLocaleString('en-US')}`).join('\n');
}

async function main(): Promise<void> {
  const opts = parse();
  if (opts.help) {
    console.log(USAGE);
    return;
  }
  if (opts.list) {
    for (const s of SUITES) console.log(`${s.name.padEnd(14)} ${s.title}`);
    return;
  }
  const selected = opts.names.length ? SUITES.filter((s) => opts.names.includes(s.name)) : SUITES;
  const started = performance.now();
  const log = (line: string): void => console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}`);
  const node = execFileSync(PINNED_NODE, ['--version'], { encoding: 'utf8' }).trim();
  const machine = machineFacts(node);
  const benchDir = path.join(opts.out, 'bench');
  fs.mkdirSync(benchDir, { recursive: true });

  // A failing suite keeps its previous result; the others still run and the report is rewritten.
  const failed: string[] = [];
  for (const suite of opts.reportOnly ? [] : selected) {
    log(`${suite.name}: start${opts.quick ? ' (quick)' : ''}`);
    const runOpts = { quick: opts.quick, machine, log, ...(opts.rounds ? { rounds: opts.rounds } : {}) };
    try {
      const result = suite.kind === 'timed' ? await runTimed(suite, runOpts) : await runSize(suite, runOpts);
      fs.writeFileSync(path.join(benchDir, `${suite.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
      fs.writeFileSync(path.join(benchDir, `${suite.name}.svg`), resultChartSvg(result));
      console.log(`${suite.title} (${suite.name})\n${resultSummary(result)}`);
    } catch (err) {
      failed.push(suite.name);
      log(`${suite.name}: FAILED: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  // Regenerate the report from every stored result of a suite that still exists, in suite order.
  const results: BenchmarkResult[] = [];
  for (const s of SUITES) {
    const file = path.join(benchDir, `${s.name}.json`);
    if (!fs.existsSync(file)) continue;
    const result = JSON.parse(fs.readFileSync(file, 'utf8')) as BenchmarkResult;
    results.push(result);
    if (opts.reportOnly) fs.writeFileSync(path.join(benchDir, `${s.name}.svg`), resultChartSvg(result));
  }
  const report = path.join(opts.out, 'benchmarks.md');
  if (results.length === 0) {
    console.error('bench: no results to report');
    process.exitCode = 1;
    return;
  }
  const reliability = fs.existsSync(path.join(opts.out, 'reliability')) ? `\n${benchmarksSection(opts.out)}` : '';
  fs.writeFileSync(report, `${renderReport(results, (name) => `bench/${name}.svg`)}${reliability}`);
  log(`wrote ${path.relative(process.cwd(), report) || report} (${results.length} sections)`);
  if (failed.length) {
    console.error(`bench: failed: ${failed.join(', ')} (their sections keep the previous result, if any)`);
    process.exitCode = 1;
  }
}

main().then(
  // Once the report is written nothing is left to do; a timer some teardown left pending (the
  // private containerd's 10 s stop grace period) must not hold the process open.
  () => process.exit(),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
