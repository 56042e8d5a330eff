/** docs/benchmarks.md from benchmark results. Pure; no I/O. */
import type { BenchmarkResult, MachineFacts, PrintedMetric, SizeResult, TimedResult, VariantResult } from './model.ts';
import { ratio } from './stats.ts';

export function formatMs(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
}

export function formatSize(bytes: number): string {
  return bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

/** A printed metric: whole numbers with thousands separators from 100 up, else 3 significant digits. */
export function formatMetric(value: number): string {
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString('en-US');
  return Number(value.toPrecision(3)).toString();
}

export function formatRatio(r: number | undefined): string {
  if (r === undefined) return '–';
  return r < 0.1 ? `${r.toFixed(3)}×` : `${r.toFixed(2)}×`;
}

/** A table cell: pipes and line breaks would end the cell or the row. */
export function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

export function code(text: string): string {
  return text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
}

function machineLine(m: MachineFacts): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, kernel ${m.kernel}, Node ${m.node}`;
}

function sameMachine(a: MachineFacts, b: MachineFacts): boolean {
  return machineLine(a) === machineLine(b);
}

/** The row each variant is compared with: its own peer, else the benchmark's. */
function peerOf(v: VariantResult, r: TimedResult): VariantResult {
  const label = v.peer ?? r.peer;
  const peer = r.variants.find((p) => p.label === label);
  if (!peer) throw new Error(`report: ${r.name} has no variant labelled "${label}"`);
  return peer;
}

/** Our variant against the peer first, then every other variant that names its own peer. */
function comparisons(r: TimedResult, ours: VariantResult): [VariantResult, VariantResult][] {
  const pairs: [VariantResult, VariantResult][] = [[ours, peerOf(ours, r)]];
  for (const v of r.variants) if (v !== ours && v.peer !== undefined && v.peer !== v.label) pairs.push([v, peerOf(v, r)]);
  return pairs;
}

function metricValue(v: VariantResult, m: PrintedMetric, r: TimedResult): number {
  const summary = v.metrics?.[m.key];
  if (!summary) throw new Error(`report: ${r.name} variant "${v.label}" has no "${m.key}" readings`);
  return summary.median;
}

function timedTable(r: TimedResult): string[] {
  const lines = [
    '| variant | wall median ms | wall min ms | wall p90 ms | CPU median ms | max RSS median MiB | wall vs peer |',
    '|---|--:|--:|--:|--:|--:|--:|',
  ];
  for (const v of r.variants) {
    lines.push(
      `| ${rowName(v, r)} | ${formatMs(v.wallMs.median)} | ${formatMs(v.wallMs.min)} | ${formatMs(v.wallMs.p90)} | ${formatMs(v.cpuMs.median)} | ${(v.maxRssKiB.median / 1024).toFixed(1)} | ${formatRatio(ratio(v.wallMs.median, peerOf(v, r).wallMs.median))} |`,
    );
  }
  return lines;
}

function metricTable(r: TimedResult, metrics: readonly PrintedMetric[]): string[] {
  const [head, ...rest] = metrics as [PrintedMetric, ...PrintedMetric[]];
  const lines = [
    `| variant | ${cell(head.label)} median | min | max | ${rest.map((m) => `${cell(m.label)} median | `).join('')}vs peer |`,
    `|---|--:|--:|--:|${rest.map(() => '--:|').join('')}--:|`,
  ];
  for (const v of r.variants) {
    const s = v.metrics?.[head.key];
    if (!s) throw new Error(`report: ${r.name} variant "${v.label}" has no "${head.key}" readings`);
    const others = rest.map((m) => `${formatMetric(metricValue(v, m, r))} | `).join('');
    lines.push(`| ${rowName(v, r)} | ${formatMetric(s.median)} | ${formatMetric(s.min)} | ${formatMetric(s.max)} | ${others}${formatRatio(ratio(s.median, metricValue(peerOf(v, r), head, r)))} |`);
  }
  return lines;
}

function rowName(v: VariantResult, r: TimedResult): string {
  const role = v.label === r.ours ? ' (ours)' : v.label === r.peer ? ' (peer)' : '';
  return role ? `**${cell(v.label)}**${role}` : cell(v.label);
}

function timedSection(r: TimedResult, chart: string, top: MachineFacts): string[] {
  const ours = r.variants.find((v) => v.label === r.ours);
  if (!ours || !r.variants.some((v) => v.label === r.peer)) throw new Error(`report: ${r.name} has no variant labelled "${!ours ? r.ours : r.peer}"`);
  const lines: string[] = [`## ${r.title} (\`${r.name}\`)`, '', r.what, ''];
  const meta = [
    `Measured ${r.machine.date}`,
    `${r.rounds} rounds (+${r.warmupRounds} warm-up), interleaved`,
    `load average ${r.load[0].toFixed(2)} → ${r.load[1].toFixed(2)}`,
  ];
  if (r.env) meta.push(`every run: ${r.env}`);
  if (r.quick) meta.push('**quick run: indicative only**');
  lines.push(meta.join(' · '), '');
  if (!sameMachine(r.machine, top)) lines.push(`Machine: ${machineLine(r.machine)}`, '');
  const head = r.metrics?.[0];
  lines.push(...(head ? metricTable(r, r.metrics!) : timedTable(r)), '');
  for (const [a, b] of comparisons(r, ours)) {
    if (head) {
      const [x, y] = [metricValue(a, head, r), metricValue(b, head, r)];
      lines.push(`**${a.label} ÷ ${b.label}: ${head.label} ${formatRatio(ratio(x, y))}** (medians ${formatMetric(x)} vs ${formatMetric(y)}; ${head.better} is better).`, '');
    } else {
      lines.push(
        `**${a.label} ÷ ${b.label}: wall ${formatRatio(ratio(a.wallMs.median, b.wallMs.median))}, ` +
          `CPU ${formatRatio(ratio(a.cpuMs.median, b.cpuMs.median))}, ` +
          `max RSS ${formatRatio(ratio(a.maxRssKiB.median, b.maxRssKiB.median))}** (medians; ` +
          `wall ${formatMs(a.wallMs.median)} ms vs ${formatMs(b.wallMs.median)} ms).`,
        '',
      );
    }
  }
  lines.push(`![${cell(r.title)}: median ${head ? cell(head.label) : 'wall time'} per variant](${chart})`, '', 'Commands:', '');
  for (const v of r.variants) {
    const parts = [`- ${cell(v.label)}: ${code(v.command)}`];
    if (v.env) parts.push(`(${v.env})`);
    if (v.output) parts.push(`→ prints ${code(v.output)}`);
    if (v.note) parts.push(`— ${v.note}`);
    lines.push(parts.join(' '));
  }
  lines.push('');
  return lines;
}

function sizeSection(r: SizeResult, chart: string, top: MachineFacts): string[] {
  const ours = r.items.find((i) => i.label === r.ours);
  const peer = r.items.find((i) => i.label === r.peer);
  if (!ours || !peer) throw new Error(`report: ${r.name} has no item labelled "${!ours ? r.ours : r.peer}"`);
  const lines: string[] = [`## ${r.title} (\`${r.name}\`)`, '', r.what, ''];
  lines.push(`Measured ${r.machine.date}${r.quick ? ' · **quick run: compressed sizes only if cached**' : ''}`, '');
  if (!sameMachine(r.machine, top)) lines.push(`Machine: ${machineLine(r.machine)}`, '');
  lines.push('| file | bytes | size | vs peer | note |', '|---|--:|--:|--:|---|');
  for (const i of r.items) {
    const role = i.label === r.ours ? ' (ours)' : i.label === r.peer ? ' (peer)' : '';
    const name = role ? `**${cell(i.label)}**${role}` : cell(i.label);
    const bytes = i.bytes === null ? '–' : i.bytes.toLocaleString('en-US');
    const size = i.bytes === null ? '–' : formatSize(i.bytes);
    const vs = i.bytes === null || peer.bytes === null ? '–' : formatRatio(ratio(i.bytes, peer.bytes));
    lines.push(`| ${name} | ${bytes} | ${size} | ${vs} | ${cell(i.note ?? '')} |`);
  }
  const r0 = ours.bytes !== null && peer.bytes !== null ? ratio(ours.bytes, peer.bytes) : undefined;
  lines.push('', `**${ours.label} ÷ ${peer.label}: ${formatRatio(r0)}** (bytes on disk).`, '', `![${cell(r.title)}](${chart})`, '');
  return lines;
}

/**
 * The whole report. `chartPath(name)` is the chart's link relative to the markdown file. Sections
 * follow the order of `results`; the machine facts on top come from the newest result.
 */
export function renderReport(results: readonly BenchmarkResult[], chartPath: (name: string) => string): string {
  if (results.length === 0) throw new Error('report: no results to render');
  const newest = [...results].sort((a, b) => b.machine.date.localeCompare(a.machine.date))[0]!.machine;
  const lines: string[] = [
    '# Benchmarks',
    '',
    '<!-- Generated by `npm run bench` (scripts/bench/run.ts) from docs/bench/*.json; edits here are overwritten. -->',
    '',
    'Regenerate with `npm run bench` (all suites, ≈16 min on 2 cores, most of it the shim memory, import and eStargz suites; prepared inputs are cached by content hash) ' +
      'or `npm run bench -- --only NAME`; `--quick` is a < 1 min smoke run that writes to a temporary directory. ' +
      'Runs of one benchmark are interleaved (round r runs the variants rotated by r) so that background load ' +
      'falls on every variant alike. Each run is spawned directly (no shell) through GNU time, which adds ' +
      'about 2 ms of spawn and fork/exec to every row (the `/bin/true` row); CPU is user + system time of the command, max RSS is its peak ' +
      'resident set, file-backed pages of the binary included. Differences under ~5 ms of start-up time are noise on a shared machine. ' +
      'Throughput suites (`ttrpc`) tabulate instead what each run measured and printed itself, as their sections say.',
    '',
    '| machine | |',
    '|---|---|',
    `| CPU | ${cell(newest.cpu)} |`,
    `| cores | ${newest.cores} |`,
    `| memory | ${newest.memoryGiB} GiB |`,
    `| OS | ${cell(newest.os)} |`,
    `| kernel | ${cell(newest.kernel)} |`,
    `| Node (runner, SEA, \`node\` rows) | ${cell(newest.node)} |`,
    `| date | ${newest.date} |`,
    '',
  ];
  for (const r of results) {
    lines.push(...(r.kind === 'timed' ? timedSection(r, chartPath(r.name), newest) : sizeSection(r, chartPath(r.name), newest)));
  }
  return `${lines.join('\n').trimEnd()}\n`;
}
