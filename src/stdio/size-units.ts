/**
 * Byte sizes as operators write them in `maxSize=`: a bare number is bytes; B, KB, MB, GB are
 * powers of 1000 and KiB, MiB, GiB powers of 1024 (K/M/G alone mean KB/MB/GB, as Docker's
 * log options read them). Units are case-insensitive; a decimal number is allowed
 * (`1.5MiB`) and rounded down to whole bytes. Zero, negatives and anything else are refused.
 */
const UNITS: ReadonlyMap<string, number> = new Map([
  ['', 1],
  ['b', 1],
  ['k', 1e3],
  ['kb', 1e3],
  ['m', 1e6],
  ['mb', 1e6],
  ['g', 1e9],
  ['gb', 1e9],
  ['kib', 1024],
  ['mib', 1024 ** 2],
  ['gib', 1024 ** 3],
]);

export class SizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SizeError';
  }
}

export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(text);
  const unit = m ? UNITS.get(m[2]!.toLowerCase()) : undefined;
  if (!m || unit === undefined) {
    throw new SizeError(`${what} "${text}": want a number with an optional unit B, KB, MB, GB, KiB, MiB or GiB (e.g. 100MB)`);
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new SizeError(`${what} "${text}": must be at least 1 byte and at most 2^53 bytes`);
  return bytes;
}
