/** Which numbers of a result go into its chart. Pure; no I/O. */
import { renderBarChart, type BarRole } from './chart-svg.ts';
import type { BenchmarkResult } from './model.ts';
import { formatMetric, formatMs } from './report-markdown.ts';

/** Our variant and the peer, and in a timed result every pair a variant names with its own peer. */
function role(label: string, r: BenchmarkResult): BarRole {
  if (label === r.ours) return 'ours';
  if (label === r.peer) return 'peer';
  if (r.kind !== 'timed') return 'other';
  const pairs = r.variants.filter((v) => v.peer !== undefined && v.peer !== v.label);
  if (pairs.some((v) => v.label === label)) return 'ours';
  return pairs.some((v) => v.peer === label) ? 'peer' : 'other';
}

export function resultChartSvg(r: BenchmarkResult): string {
  const head = r.kind === 'timed' ? r.metrics?.[0] : undefined;
  if (r.kind === 'timed' && head) {
    return renderBarChart({
      title: `${r.title}: ${head.label}`,
      axis: `${head.label}, ${head.better} is better (bar: median, whisker: min–max; ${r.rounds} interleaved rounds)`,
      bars: r.variants.map((v) => {
        const s = v.metrics?.[head.key];
        if (!s) throw new Error(`chart: ${r.name} variant "${v.label}" has no "${head.key}" readings`);
        return { label: v.label, value: s.median, low: s.min, high: s.max, role: role(v.label, r) };
      }),
      format: formatMetric,
      tick: formatMetric,
    });
  }
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
