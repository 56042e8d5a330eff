/** docs/benchmarks.md from benchmark results. Pure; no I/O. */
import type { BenchmarkResult, MachineFacts, SizeResult, TimedResult } from './model.ts';
import { ratio } from './stats.ts';

export function formatMs(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
}

export function formatSize(bytes: number): string {
  return bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(1)} MB`;
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

function timedSection(r: TimedResult, chart: string, top: MachineFacts): string[] {
  const peer = r.variants.find((v) => v.label === r.peer);
  const ours = r.variants.find((v) => v.label === r.ours);
  if (!peer || !ours) throw new Error(`report: ${r.name} has no variant labelled "${!ours ? r.ours : r.peer}"`);
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
  lines.push(
    '| variant | wall median ms | wall min ms | wall p90 ms | CPU median ms | max RSS median MiB | wall vs peer |',
    '|---|--:|--:|--:|--:|--:|--:|',
  );
  for (const v of r.variants) {
    const role = v.label === r.ours ? ' (ours)' : v.label === r.peer ? ' (peer)' : '';
    const name = v.label === r.ours || v.label === r.peer ? `**${cell(v.label)}**${role}` : cell(v.label);
    lines.push(
      `| ${name} | ${formatMs(v.wallMs.median)} | ${formatMs(v.wallMs.min)} | ${formatMs(v.wallMs.p90)} | ${formatMs(v.cpuMs.median)} | ${(v.maxRssKiB.median / 1024).toFixed(1)} | ${formatRatio(ratio(v.wallMs.median, peer.wallMs.median))} |`,
    );
  }
  lines.push(
    '',
    `**${ours.label} ÷ ${peer.label}: wall ${formatRatio(ratio(ours.wallMs.median, peer.wallMs.median))}, ` +
      `CPU ${formatRatio(ratio(ours.cpuMs.median, peer.cpuMs.median))}, ` +
      `max RSS ${formatRatio(ratio(ours.maxRssKiB.median, peer.maxRssKiB.median))}** (medians; ` +
      `wall ${formatMs(ours.wallMs.median)} ms vs ${formatMs(peer.wallMs.median)} ms).`,
    '',
    `![${cell(r.title)}: median wall time per variant](${chart})`,
    '',
    'Commands:',
    '',
  );
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
    'Regenerate with `npm run bench` (all suites, ≈3 min on 2 cores, 1 min of it `zstd -19`; cached by content hash) ' +
      'or `npm run bench -- --only NAME`; `--quick` is a < 1 min smoke run that writes to a temporary directory. ' +
      'Runs of one benchmark are interleaved (round r runs the variants rotated by r) so that background load ' +
      'falls on every variant alike. Each run is spawned directly (no shell) through GNU time, which adds ' +
      'about 2 ms of spawn and fork/exec to every row (the `/bin/true` row); CPU is user + system time of the command, max RSS is its peak ' +
      'resident set, file-backed pages of the binary included. Differences under ~5 ms of start-up time are noise on a shared machine.',
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
