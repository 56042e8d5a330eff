/** Order statistics for benchmark samples. Pure; no I/O. */

export interface Summary {
  n: number;
  min: number;
  median: number;
  p90: number;
  max: number;
}

function sorted(samples: readonly number[]): number[] {
  if (samples.length === 0) throw new Error('stats: no samples');
  for (const s of samples) if (!Number.isFinite(s)) throw new Error(`stats: sample ${s} is not a finite number`);
  return [...samples].sort((a, b) => a - b);
}

/** Median; for an even count, the mean of the two middle samples. */
export function median(samples: readonly number[]): number {
  const s = sorted(samples);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Nearest-rank quantile (q in (0, 1]): the smallest sample with at least q of the samples at or
 * below it. Always a value that was observed.
 */
export function quantile(samples: readonly number[], q: number): number {
  if (!(q > 0 && q <= 1)) throw new Error(`stats: quantile ${q} is outside (0, 1]`);
  const s = sorted(samples);
  return s[Math.ceil(q * s.length) - 1]!;
}

export function summarize(samples: readonly number[]): Summary {
  const s = sorted(samples);
  return { n: s.length, min: s[0]!, median: median(s), p90: quantile(s, 0.9), max: s[s.length - 1]! };
}

/** ours ÷ peer, or undefined when the peer's value is zero (nothing meaningful to divide by). */
export function ratio(ours: number, peer: number): number | undefined {
  return peer === 0 ? undefined : ours / peer;
}
