/**
 * Just enough TOML to write containerd's config.toml from a plain object: strings, numbers,
 * booleans, arrays of those, and nested tables (written as `[a."b.c"]` headers). containerd parses
 * what we write, so staying inside this subset keeps the output obviously valid.
 */

export type TomlScalar = string | number | boolean;
export type TomlValue = TomlScalar | readonly TomlScalar[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue | undefined;
}

function isTable(value: TomlValue): value is TomlTable {
  return typeof value === 'object' && !Array.isArray(value);
}

function key(k: string): string {
  return /^[A-Za-z0-9_-]+$/.test(k) ? k : quote(k);
}

function quote(s: string): string {
  // JSON string escapes are valid TOML basic-string escapes; TOML also forbids a raw DEL.
  return JSON.stringify(s).replace(/\x7f/g, '\\u007F');
}

function scalar(value: TomlScalar, where: string): string {
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (!Number.isFinite(value)) throw new Error(`TOML: ${where} is not a finite number: ${value}`);
  return String(value);
}

function writeTable(table: TomlTable, pathKeys: string[], out: string[]): void {
  const subtables: [string, TomlTable][] = [];
  const body: string[] = [];
  for (const [k, v] of Object.entries(table)) {
    if (v === undefined) continue;
    const where = [...pathKeys, k].join('.');
    if (isTable(v)) {
      subtables.push([k, v]);
    } else if (Array.isArray(v)) {
      body.push(`${key(k)} = [${v.map((item) => scalar(item, where)).join(', ')}]`);
    } else {
      body.push(`${key(k)} = ${scalar(v as TomlScalar, where)}`);
    }
  }
  if (pathKeys.length > 0 && (body.length > 0 || subtables.length === 0)) {
    out.push('', `[${pathKeys.map(key).join('.')}]`);
  }
  out.push(...body);
  for (const [k, sub] of subtables) writeTable(sub, [...pathKeys, k], out);
}

export function toToml(root: TomlTable): string {
  const out: string[] = [];
  writeTable(root, [], out);
  return `${out.join('\n').trimStart()}\n`;
}

/** Deep merge for config overrides: tables merge key by key, anything else replaces. */
export function mergeTables(base: TomlTable, extra: TomlTable): TomlTable {
  const merged: TomlTable = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    const current = merged[k];
    merged[k] = v !== undefined && current !== undefined && isTable(current) && isTable(v) ? mergeTables(current, v) : v;
  }
  return merged;
}
