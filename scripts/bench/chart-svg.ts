/** A horizontal bar chart as a self-contained SVG string. Pure; no I/O. */

export type BarRole = 'ours' | 'peer' | 'other';

export interface Bar {
  label: string;
  value: number;
  /** Optional spread drawn as a whisker, e.g. min and p90. */
  low?: number;
  high?: number;
  role: BarRole;
}

export interface BarChart {
  title: string;
  /** Axis caption, e.g. "wall time, ms (bar: median, whisker: min–p90)". */
  axis: string;
  bars: readonly Bar[];
  /** Text of a value label at the end of a bar. */
  format: (value: number) => string;
  /** Text of an axis tick; defaults to `format`. */
  tick?: (value: number) => string;
}

const COLOURS: Record<BarRole, string> = { ours: '#d9480f', peer: '#1971c2', other: '#868e96' };
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** The smallest 1, 2, 2.5 or 5 × 10^k that is ≥ value (1 for value ≤ 0). */
export function niceCeil(value: number): number {
  if (!(value > 0) || !Number.isFinite(value)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  // Subnormal or huge inputs under/overflow the power of ten; the value itself is then the scale.
  if (!(magnitude > 0) || !Number.isFinite(magnitude * 10)) return value;
  for (const step of [1, 2, 2.5, 5]) {
    if (step * magnitude >= value * (1 - 1e-12)) return step * magnitude;
  }
  return 10 * magnitude;
}

function num(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

export function renderBarChart(chart: BarChart): string {
  for (const b of chart.bars) {
    for (const v of [b.value, b.low, b.high]) {
      if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new Error(`chart: bar "${b.label}" has value ${v}; values must be finite and ≥ 0`);
    }
  }
  const rowHeight = 26;
  const top = 48;
  const longestLabel = Math.max(0, ...chart.bars.map((b) => b.label.length));
  // ~7.5 px per character of 12 px bold sans-serif; labels are right-aligned against the plot.
  const left = Math.min(380, Math.max(120, 20 + longestLabel * 7.5));
  const plotWidth = 460;
  const right = 110;
  const width = Math.round(left + plotWidth + right);
  const plotBottom = top + rowHeight * chart.bars.length;
  const height = plotBottom + 66;
  const max = niceCeil(Math.max(0, ...chart.bars.flatMap((b) => [b.value, b.high ?? 0])));
  const x = (v: number): number => left + (v / max) * plotWidth;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="12" y="22" font-size="15" font-weight="600" fill="#212529">${escapeXml(chart.title)}</text>`);

  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    const tx = num(x(v));
    out.push(`<line x1="${tx}" y1="${top - 6}" x2="${tx}" y2="${plotBottom}" stroke="#dee2e6" stroke-width="1"/>`);
    out.push(`<text x="${tx}" y="${plotBottom + 16}" text-anchor="middle" fill="#495057">${escapeXml((chart.tick ?? chart.format)(v))}</text>`);
  }
  out.push(`<text x="${num(left + plotWidth / 2)}" y="${plotBottom + 36}" text-anchor="middle" fill="#495057">${escapeXml(chart.axis)}</text>`);

  chart.bars.forEach((b, i) => {
    const y = top + i * rowHeight;
    const mid = num(y + rowHeight / 2);
    const weight = b.role === 'other' ? '400' : '600';
    out.push(`<text x="${num(left - 8)}" y="${num(y + rowHeight / 2 + 4)}" text-anchor="end" font-weight="${weight}" fill="#212529">${escapeXml(b.label)}</text>`);
    out.push(`<rect class="bar" x="${num(left)}" y="${num(y + 5)}" width="${num(Math.max(x(b.value) - left, 1))}" height="${rowHeight - 10}" fill="${COLOURS[b.role]}" rx="2"/>`);
    let end = x(b.value);
    if (b.low !== undefined && b.high !== undefined) {
      const [lo, hi] = [x(b.low), x(b.high)];
      out.push(`<path d="M${num(lo)} ${mid}H${num(hi)}M${num(lo)} ${num(y + 9)}V${num(y + rowHeight - 9)}M${num(hi)} ${num(y + 9)}V${num(y + rowHeight - 9)}" stroke="#212529" stroke-width="1.2" fill="none"/>`);
      end = Math.max(end, hi);
    }
    out.push(`<text x="${num(end + 6)}" y="${num(y + rowHeight / 2 + 4)}" fill="#212529">${escapeXml(chart.format(b.value))}</text>`);
  });

  const legendY = height - 8;
  let lx = 12;
  for (const [role, text] of [['ours', 'ours'], ['peer', 'peer'], ['other', 'reference']] as const) {
    if (!chart.bars.some((b) => b.role === role)) continue;
    out.push(`<rect x="${lx}" y="${legendY - 9}" width="10" height="10" fill="${COLOURS[role]}"/>`);
    out.push(`<text x="${lx + 14}" y="${legendY}" fill="#495057">${text}</text>`);
    lx += 24 + text.length * 7;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
