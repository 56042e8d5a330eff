/**
 * Line-level reading of a containerd config.toml: which lines are table headers and what key
 * path each header names. The merge edits whole tables by their header, so this is all the
 * structure it needs; smol-toml parses the full file separately to validate the result.
 */

export interface HeaderLine {
  /** 0-based line index. */
  readonly line: number;
  /** Key path with quoting removed, e.g. ["plugins", "io.containerd.grpc.v1.cri", "containerd"]. */
  readonly path: readonly string[];
  /** `[[array.of.tables]]` rather than `[table]`. */
  readonly array: boolean;
}

/** Splits keeping each line's own ending out, so `lines.join('\n')` gives the text back exactly. */
export function splitLines(text: string): string[] {
  return text.split('\n');
}

/**
 * Headers of the text, skipping anything inside multi-line strings (a `[x]` line there is data).
 * Lines that look like headers but do not parse as key paths are not headers to us; the full
 * parser reports them.
 */
export function headerLines(lines: readonly string[]): HeaderLine[] {
  const out: HeaderLine[] = [];
  let openMultiline: '"""' | "'''" | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (openMultiline === undefined) {
      const header = parseHeader(line);
      if (header) out.push({ line: i, ...header });
    }
    openMultiline = multilineStateAfter(line, openMultiline);
  }
  return out;
}

/**
 * For each line, whether it begins inside a multi-line string (its text is string data, not a
 * comment, header or marker).
 */
export function linesInsideStrings(lines: readonly string[]): boolean[] {
  const out: boolean[] = [];
  let openMultiline: '"""' | "'''" | undefined;
  for (const line of lines) {
    out.push(openMultiline !== undefined);
    openMultiline = multilineStateAfter(line, openMultiline);
  }
  return out;
}

function multilineStateAfter(line: string, open: '"""' | "'''" | undefined): '"""' | "'''" | undefined {
  let state = open;
  let i = 0;
  while (i < line.length) {
    if (state !== undefined) {
      if (state === '"""' && line[i] === '\\') {
        i += 2;
        continue;
      }
      if (line.startsWith(state, i)) {
        // A closing delimiter may be followed by up to two more quotes that belong to the string.
        let end = i + 3;
        while (end < line.length && line[end] === state[0] && end < i + 5) end++;
        state = undefined;
        i = end;
        continue;
      }
      i++;
      continue;
    }
    const c = line[i];
    if (c === '#') return undefined;
    if (line.startsWith('"""', i) || line.startsWith("'''", i)) {
      state = line.slice(i, i + 3) as '"""' | "'''";
      i += 3;
      continue;
    }
    if (c === '"' || c === "'") {
      // Single-line string: skip to its end.
      i++;
      while (i < line.length && line[i] !== c) i += c === '"' && line[i] === '\\' ? 2 : 1;
      i++;
      continue;
    }
    i++;
  }
  return state;
}

/** Parses `[a."b.c".d]  # comment` into its key path; undefined when the line is no header. */
export function parseHeader(line: string): { path: string[]; array: boolean } | undefined {
  const trimmed = line.replace(/\r$/, '').trimStart();
  if (!trimmed.startsWith('[')) return undefined;
  const array = trimmed.startsWith('[[');
  let i = array ? 2 : 1;
  const path: string[] = [];
  const skipWs = (): void => {
    while (trimmed[i] === ' ' || trimmed[i] === '\t') i++;
  };
  for (;;) {
    skipWs();
    const c = trimmed[i];
    if (c === '"') {
      let s = '"';
      i++;
      while (i < trimmed.length && trimmed[i] !== '"') {
        if (trimmed[i] === '\\') {
          s += trimmed.slice(i, i + 2);
          i += 2;
        } else s += trimmed[i++];
      }
      if (trimmed[i] !== '"') return undefined;
      i++;
      try {
        path.push(JSON.parse(`${s}"`) as string);
      } catch {
        return undefined;
      }
    } else if (c === "'") {
      const end = trimmed.indexOf("'", i + 1);
      if (end < 0) return undefined;
      path.push(trimmed.slice(i + 1, end));
      i = end + 1;
    } else {
      const m = /^[A-Za-z0-9_-]+/.exec(trimmed.slice(i));
      if (!m) return undefined;
      path.push(m[0]);
      i += m[0].length;
    }
    skipWs();
    if (trimmed[i] === '.') {
      i++;
      continue;
    }
    break;
  }
  const close = array ? ']]' : ']';
  if (!trimmed.startsWith(close, i)) return undefined;
  const rest = trimmed.slice(i + close.length).trim();
  if (rest !== '' && !rest.startsWith('#')) return undefined;
  return { path, array };
}

export function pathStartsWith(path: readonly string[], prefix: readonly string[]): boolean {
  return prefix.length <= path.length && prefix.every((seg, i) => path[i] === seg);
}

/** A TOML key segment as we write it: bare when allowed, else a basic string. */
export function tomlKey(segment: string): string {
  return /^[A-Za-z0-9_-]+$/.test(segment) ? segment : tomlString(segment);
}

export function tomlString(s: string): string {
  return JSON.stringify(s).replace(/\x7f/g, '\\u007F');
}

export function tomlHeader(path: readonly string[]): string {
  return `[${path.map(tomlKey).join('.')}]`;
}
