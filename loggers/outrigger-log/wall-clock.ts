/**
 * Nanosecond wall-clock time for log records: Date.now() only has milliseconds, so the
 * monotonic clock fills in below, re-anchored to the wall clock every second so clock steps
 * show up within one. Formatted as Go's time.RFC3339Nano in UTC (trailing zeros of the
 * fraction dropped, and the dot with them), which is what containerd's CRI logger writes.
 */
const NS_PER_MS = 1_000_000n;
const REANCHOR_NS = 1_000_000_000n;

export class WallClock {
  #wallNs = 0n;
  #monoNs = 0n;

  nowNs(): bigint {
    const mono = process.hrtime.bigint();
    if (this.#wallNs === 0n || mono - this.#monoNs > REANCHOR_NS) {
      const wall = BigInt(Date.now()) * NS_PER_MS;
      // Never step backwards within a re-anchor: keep lines in time order.
      const projected = this.#wallNs + (mono - this.#monoNs);
      this.#wallNs = this.#wallNs !== 0n && projected > wall ? projected : wall;
      this.#monoNs = mono;
      return this.#wallNs;
    }
    return this.#wallNs + (mono - this.#monoNs);
  }
}

/** `2006-01-02T15:04:05.999999999Z` for a time in nanoseconds since the epoch. */
export function rfc3339Nano(ns: bigint): string {
  const ms = Number(ns / NS_PER_MS);
  const seconds = new Date(ms - (ms % 1000)).toISOString().slice(0, 19);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return frac === '' ? `${seconds}Z` : `${seconds}.${frac}Z`;
}
