/** Which numbers of a result go into its chart. Pure; no I/O. */
import { renderBarChart, type BarRole } from './chart-svg.ts';
import type { BenchmarkResult } from './model.ts';
import { formatMs } from './report-markdown.ts';

function role(label: string, r: BenchmarkResult): BarRole {
  return label === r.ours ? 'ours' : label === r.peer ? 'peer' : 'other';
}

export function resultChartSvg(r: BenchmarkResult): string {
  if (r.kind === 'timed') {
    return renderBarChart({
      title: `${r.title}: wall time`,
      axis: `milliseconds (bar: median, whisker: min–p90; ${r.rounds} interleaved rounds)`,
      bars: r.variants.map((v) => ({ label: v.label, value: v.wallMs.median, low: v.wallMs.min, high: v.wallMs.p90, role: role(v.label, r) })),
      format: (ms) => `${formatMs(ms)} ms`,
      tick: (ms) => `${Number(ms.toFixed(2))} ms`,
    });
  }
  return renderBarChart({
    title: r.title,
    axis: 'megabytes (10^6 bytes)',
    bars: r.items.filter((i) => i.bytes !== null).map((i) => ({ label: i.label, value: i.bytes! / 1e6, role: role(i.label, r) })),
    format: (mb) => (mb < 1 ? `${(mb * 1e3).toFixed(0)} kB` : `${mb.toFixed(1)} MB`),
    tick: (mb) => `${Number(mb.toFixed(2))} MB`,
  });
}
