/**
 * The TOML subset runtime option files use: `key = value` lines with strings, booleans and
 * integers, comments, blank lines, and at most table headers (whose keys are folded into one
 * map, since the runc options are flat). Anything else is an error naming the line.
 */
export function parseFlatToml(text: string, source: string): Map<string, string | boolean | number> {
  const out = new Map<string, string | boolean | number>();
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = stripComment(lines[n]!).trim();
    if (line === '') continue;
    if (/^\[{1,2}[^\]]+\]{1,2}$/.test(line)) continue;
    const m = /^([A-Za-z0-9_-]+|"[^"]*")\s*=\s*(.+)$/.exec(line);
    if (!m) throw new Error(`${source}:${n + 1}: not a key = value line: ${line}`);
    const key = m[1]!.startsWith('"') ? m[1]!.slice(1, -1) : m[1]!;
    out.set(key, parseValue(m[2]!.trim(), `${source}:${n + 1}`));
  }
  return out;
}

function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== undefined) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#') return line.slice(0, i);
  }
  return line;
}

function parseValue(raw: string, where: string): string | boolean | number {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  if (/^[+-]?\d[\d_]*$/.test(raw)) return Number(raw.replaceAll('_', ''));
  if (raw.startsWith("'") && raw.endsWith("'") && raw.length >= 2) return raw.slice(1, -1);
  if (raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2) {
    try {
      return JSON.parse(raw) as string;
    } catch {
      throw new Error(`${where}: bad string ${raw}`);
    }
  }
  throw new Error(`${where}: unsupported value ${raw} (strings, booleans and integers only)`);
}
