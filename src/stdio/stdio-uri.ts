/**
 * The stdout URI of a Create/Exec request, read the way the Go shim's `url.Parse` reads it
 * (shim-protocol.md §4.1, §4.3, §4.4): scheme, a percent-decoded path, and the query as
 * ordered key → values (`+` is a space, `%XX` decoded, a bare `key` has the value "").
 * Beyond Go: a host part (`file://var/log/x`, a missing third slash) is refused by name,
 * because Go silently drops it and writes to `/log/x` instead (containerd#8428).
 */
import { StdioError } from './process-io.ts';

export interface StdioUri {
  /** Lower-cased, e.g. "file", "binary", "binary-v2". */
  readonly scheme: string;
  /** Absolute, percent-decoded. */
  readonly path: string;
  /** Keys in first-seen order, each with all of its values in order. */
  readonly query: ReadonlyMap<string, readonly string[]>;
  /** The text as given, for error messages. */
  readonly raw: string;
}

function percentDecode(text: string, plusIsSpace: boolean, what: string, raw: string): string {
  const bytes: number[] = [];
  const src = Buffer.from(plusIsSpace ? text.replaceAll('+', ' ') : text, 'utf8');
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b !== 0x25) {
      bytes.push(b);
      continue;
    }
    const hex = src.subarray(i + 1, i + 3).toString('latin1');
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new StdioError(`stdio URI ${raw}: bad percent escape in ${what} at byte ${i}`);
    bytes.push(Number.parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Go's url.ParseQuery, minus its `;` refusal quirks: `&`-separated `key=value`, decoded. */
export function parseQuery(query: string, raw = query): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (query === '') return out;
  for (const part of query.split('&')) {
    if (part === '') continue;
    if (part.includes(';')) throw new StdioError(`stdio URI ${raw}: invalid semicolon separator in query`);
    const eq = part.indexOf('=');
    const key = percentDecode(eq < 0 ? part : part.slice(0, eq), true, 'query key', raw);
    const value = eq < 0 ? '' : percentDecode(part.slice(eq + 1), true, 'query value', raw);
    const values = out.get(key);
    if (values) values.push(value);
    else out.set(key, [value]);
  }
  return out;
}

export function parseStdioUri(raw: string): StdioUri {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?$/s.exec(raw);
  if (!m) throw new StdioError(`stdio URI ${raw}: not of the form scheme:///absolute/path[?query]`);
  const scheme = m[1]!.toLowerCase();
  const host = m[2]!;
  if (host !== '') {
    throw new StdioError(`stdio URI ${raw}: has host "${host}"; the path must be absolute, e.g. ${scheme}:///${host}${m[3] ?? ''}`);
  }
  const path = percentDecode(m[3]!, false, 'path', raw);
  if (!path.startsWith('/')) throw new StdioError(`stdio URI ${raw}: path is empty; want ${scheme}:///absolute/path`);
  if (path.includes('\0')) throw new StdioError(`stdio URI ${raw}: path contains a NUL byte`);
  return { scheme, path, query: parseQuery(m[4] ?? '', raw), raw };
}

/** The first value of each key, in key order: the Go shim's logger argv pairs (values after the first are dropped, as Go does). */
export function firstValues(query: ReadonlyMap<string, readonly string[]>): [string, string][] {
  return [...query].map(([k, v]) => [k, v[0] ?? '']);
}
