/**
 * The two cgroup file shapes the kernel documents (Documentation/admin-guide/cgroup-v2.rst,
 * "Interface Files"; v1 uses the same shapes): a single value, or "flat keyed" lines of
 * `KEY VALUE`. Values are u64 counters, so they are read as bigint; the word `max` stands for
 * "no limit". Nothing here touches the file system.
 */

/** Reads `text` as one unsigned integer; undefined for empty text; `max` → `maxAs`. */
export function parseSingleValue(text: string, maxAs: bigint, where: string): bigint | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  if (t === 'max') return maxAs;
  if (!/^\d+$/.test(t)) throw new CgroupParseError(`${where}: expected an unsigned integer or "max", got ${JSON.stringify(t.slice(0, 40))}`);
  return BigInt(t);
}

/**
 * `KEY VALUE` lines into a map. Lines whose value is not an unsigned integer are refused with
 * the line number: a counter file that says something else was misread, not zero.
 */
export function parseFlatKeyed(text: string, where: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const m = /^(\S+)\s+(\d+)$/.exec(line);
    if (!m) throw new CgroupParseError(`${where}:${i + 1}: expected "KEY VALUE", got ${JSON.stringify(line.slice(0, 60))}`);
    out.set(m[1]!, BigInt(m[2]!));
  }
  return out;
}

/** Whitespace-separated unsigned integers on one line (cpuacct.usage_percpu). */
export function parseValueList(text: string, where: string): bigint[] {
  const words = text.trim().split(/\s+/).filter((w) => w !== '');
  return words.map((w, i) => {
    if (!/^\d+$/.test(w)) throw new CgroupParseError(`${where}: value ${i + 1} is not an unsigned integer: ${JSON.stringify(w.slice(0, 40))}`);
    return BigInt(w);
  });
}

export class CgroupParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CgroupParseError';
  }
}
