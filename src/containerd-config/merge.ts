/**
 * Merging our tables into an operator's config.toml without disturbing anything else.
 *
 * No npm TOML library both parses and re-emits a file with its comments and layout intact, so the
 * merge is textual and narrow: our tables go in one delimited block at the end of the file, and a
 * table of the operator's that has a header we own (e.g. an existing ocicrypt decoder entry, or a
 * runtime of the same name) is commented out line by line with a fixed prefix. Removing the block
 * and the prefixes gives back the original bytes, which is what uninstall does and what makes a
 * second install a no-op (merge = merge after unmerge). smol-toml parses input and output to
 * refuse files that are not TOML or that define our keys in a form we do not edit (inline tables,
 * dotted keys).
 */
import { parse as parseToml } from 'smol-toml';
import {
  type ContainerdMajor,
  type EntryOptions,
  type ProcessorName,
  configVersionFor,
  criRuntimesPath,
  ownedRoots,
  ownedTables,
  renderTables,
} from './entries.ts';
import { headerLines, linesInsideStrings, pathStartsWith, splitLines, tomlHeader } from './toml-lines.ts';

export const BLOCK_BEGIN = '# >>> outrigger: added by `outrigger install`; `outrigger uninstall` removes this block';
export const BLOCK_END = '# <<< outrigger';
/** Prefix on each line of an operator's table that ours replaces. */
export const REPLACED_PREFIX = '#~outrigger-replaced~ ';

export interface MergeOptions {
  readonly prefix: string;
  readonly processors: readonly ProcessorName[];
  readonly runtimeName: string;
  readonly runtimeOptionsPath: string;
  /** Used only when the file has no `version` key (a new or empty file). */
  readonly containerdMajor?: ContainerdMajor;
  readonly logDir?: string;
}

export interface MergeResult {
  readonly text: string;
  readonly configVersion: 2 | 3;
  /** Header paths of the operator's tables that were commented out. */
  readonly replaced: string[];
  /** The runc SystemdCgroup setting found in the file (our runtime options copy it). */
  readonly runcSystemdCgroup: boolean;
}

export class ConfigMergeError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ConfigMergeError';
  }
}

type TomlDoc = Record<string, unknown>;

export function parseConfig(text: string, source: string): TomlDoc {
  try {
    return parseToml(text) as TomlDoc;
  } catch (err) {
    throw new ConfigMergeError(`${source}: not valid TOML: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function getPath(doc: unknown, keys: readonly string[]): unknown {
  let cur = doc;
  for (const k of keys) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

/** The config version a parsed file declares; version 1 (or none in a non-empty file) is refused. */
export function configVersionOf(doc: TomlDoc, source: string, fallback: ContainerdMajor | undefined): 2 | 3 {
  const v = doc.version;
  if (v === undefined) {
    if (Object.keys(doc).length > 0) {
      throw new ConfigMergeError(
        `${source}: no 'version' key, so containerd reads it as config version 1, which outrigger does not edit; ` +
          "convert it with 'containerd config migrate' (1.7+/2.x) or add 'version = 2' after checking the plugin names",
      );
    }
    if (fallback === undefined) throw new ConfigMergeError(`${source}: empty or missing config and the containerd version is unknown; pass --containerd-version 1.6|1.7|2.x`);
    return configVersionFor(fallback);
  }
  if (v === 2n || v === 2) return 2;
  if (v === 3n || v === 3) return 3;
  throw new ConfigMergeError(`${source}: config version ${String(v)} is not supported (outrigger writes versions 2 and 3)`);
}

/**
 * Removes our block and un-comments replaced tables: the exact text before `merge`. Markers and
 * prefixed lines count only outside multi-line strings: inside one they are the operator's data.
 */
export function unmerge(text: string): string {
  const lines = splitLines(text);
  const inString = linesInsideStrings(lines);
  const lineStart: number[] = [];
  for (let i = 0, at = 0; i < lines.length; at += lines[i]!.length + 1, i++) lineStart.push(at);
  const beginLine = lines.findIndex((l, i) => !inString[i] && (l === BLOCK_BEGIN || l === `${BLOCK_BEGIN}\r`));
  let kept = text;
  if (beginLine >= 0) {
    const begin = lineStart[beginLine]!;
    let endLine = -1;
    for (let i = beginLine + 1; i < lines.length && endLine < 0; i++) if (!inString[i] && lines[i]!.startsWith(BLOCK_END)) endLine = i;
    if (endLine < 0) {
      throw new ConfigMergeError(`outrigger block starts at byte ${begin} but its end marker '${BLOCK_END}' is missing; remove the block by hand`);
    }
    let blockEnd = lineStart[endLine]! + BLOCK_END.length;
    if (text[blockEnd] === '\n') blockEnd++;
    // merge wrote exactly one line break before the block when the file was not empty.
    kept = text.slice(0, begin > 0 ? begin - 1 : 0) + text.slice(blockEnd);
  }
  return restoreReplaced(splitLines(kept)).join('\n');
}

function restoreReplaced(lines: readonly string[]): string[] {
  const inString = linesInsideStrings(lines);
  return lines.map((l, i) => (!inString[i] && l.startsWith(REPLACED_PREFIX) ? l.slice(REPLACED_PREFIX.length) : l));
}

/**
 * Merges our tables into `text` (which may already hold a previous merge). Returns the new text;
 * equal input and output means nothing to do.
 */
export function merge(text: string, source: string, opts: MergeOptions): MergeResult {
  const original = unmerge(text);
  const doc = parseConfig(original, source);
  const configVersion = configVersionOf(doc, source, opts.containerdMajor);
  const runtimes = criRuntimesPath(configVersion);
  const runcDeclared = getPath(doc, [...runtimes, 'runc']) !== undefined;
  const runcSystemdCgroup = getPath(doc, [...runtimes, 'runc', 'options', 'SystemdCgroup']) === true;
  const entryOpts: EntryOptions = {
    configVersion,
    prefix: opts.prefix,
    processors: opts.processors,
    runtimeName: opts.runtimeName,
    runtimeOptionsPath: opts.runtimeOptionsPath,
    declareRunc: !runcDeclared,
    ...(opts.logDir !== undefined ? { logDir: opts.logDir } : {}),
  };
  const tables = ownedTables(entryOpts);
  const roots = ownedRoots(entryOpts);

  const lines = splitLines(original);
  const headers = headerLines(lines);
  const replaced: string[] = [];
  const out = [...lines];
  for (let h = 0; h < headers.length; h++) {
    const header = headers[h]!;
    if (!roots.some((root) => pathStartsWith(header.path, root))) continue;
    replaced.push(tomlHeader(header.path));
    const end = h + 1 < headers.length ? headers[h + 1]!.line : lines.length;
    for (let i = header.line; i < end; i++) {
      // The file's final "" (after its last line break) is not a line of the table.
      if (i === lines.length - 1 && lines[i] === '') continue;
      out[i] = REPLACED_PREFIX + lines[i]!;
    }
  }

  const needsVersion = doc.version === undefined;
  const body = (needsVersion ? `version = ${configVersion}\n\n` : '') + renderTables(tables);
  const block = `${BLOCK_BEGIN}\n${body}${BLOCK_END}\n`;
  // Root keys (version) must precede every header; a file without `version` has no keys at all.
  const head = out.join('\n');
  const merged = original === '' ? block : `${head}\n${block}`;

  const mergedDoc = parseConfig(merged, `${source} (after merging outrigger's entries)`);
  for (const t of tables) {
    if (getPath(mergedDoc, t.path) === undefined) {
      throw new ConfigMergeError(`${source}: merged config lacks ${tomlHeader(t.path)}; the file defines it in a form outrigger does not edit`);
    }
  }
  if (unmerge(merged) !== original) {
    throw new ConfigMergeError(`${source}: internal check failed: removing outrigger's entries would not restore the file; nothing written`);
  }
  return { text: merged, configVersion, replaced, runcSystemdCgroup };
}
