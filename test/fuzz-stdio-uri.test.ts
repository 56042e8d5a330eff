/**
 * Fuzzing the stdio URI parser (src/stdio/stdio-uri.ts): the stdout URI of Create/Exec requests,
 * as CRI and ctr send it (file://, binary://, fifo paths). Generated from schemes, host parts,
 * path segments with good and bad percent escapes, NUL, queries and fragments. Invariants: the
 * only exception is its own StdioError naming the URI; whatever parses has a lower-case scheme
 * and an absolute path without NUL, and survives a round trip through an encoder unchanged.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StdioError } from '../src/stdio/process-io.ts';
import { parseStdioUri } from '../src/stdio/stdio-uri.ts';
import { assertFuzz, fuzzTestTimeout } from './support/fuzz.ts';

// ---- stdio URIs ----

const pathChar = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('a', 'b', 'log', '.', '-', '_', ' ', '+', ':', '@', '=', '&', ';', '%', '?', '#', '\0', 'é', '日') },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, '0')}`) },
  { weight: 1, arbitrary: fc.constantFrom('%', '%g1', '%2', '%%') },
);
const segment = fc.array(pathChar, { maxLength: 6 }).map((cs) => cs.join(''));
const uriText = fc
  .record({
    scheme: fc.constantFrom('file', 'binary', 'FILE', 'Binary-V2', 'fifo', 'x+y.z', '1bad', ''),
    slashes: fc.constantFrom('://', ':///', ':/', '://host', '://host:1', ':'),
    segments: fc.array(segment, { maxLength: 5 }),
    query: fc.option(fc.array(fc.tuple(segment, fc.option(segment, { nil: undefined })), { maxLength: 4 }), { nil: undefined }),
    fragment: fc.option(segment, { nil: undefined }),
  })
  .map(({ scheme, slashes, segments, query, fragment }) => {
    const q = query === undefined ? '' : `?${query.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join('&')}`;
    return `${scheme}${slashes}${segments.join('/')}${q}${fragment === undefined ? '' : `#${fragment}`}`;
  });

function encodeUri(u: { scheme: string; path: string; query: ReadonlyMap<string, readonly string[]> }): string {
  const encPath = u.path.split('/').map(encodeURIComponent).join('/');
  const pairs = [...u.query].flatMap(([k, vs]) => vs.map((v) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`));
  return `${u.scheme}://${encPath}${pairs.length > 0 ? `?${pairs.join('&')}` : ''}`;
}

function checkUri(raw: string): void {
  let u;
  try {
    u = parseStdioUri(raw);
  } catch (err) {
    expect(err, `not a StdioError for ${JSON.stringify(raw)}: ${String(err)}`).toBeInstanceOf(StdioError);
    expect((err as Error).message).toContain('stdio URI');
    return;
  }
  expect(u.raw).toBe(raw);
  expect(u.scheme).toMatch(/^[a-z][a-z0-9+.-]*$/);
  expect(u.path.startsWith('/')).toBe(true);
  expect(u.path.includes('\0')).toBe(false);
  const again = parseStdioUri(encodeUri(u));
  expect({ scheme: again.scheme, path: again.path, query: [...again.query] }).toEqual({ scheme: u.scheme, path: u.path, query: [...u.query] });
}

describe('stdio URI fuzzing', () => {
  it('stdio URIs: only StdioError, parsed URIs are absolute and round-trip', async () => {
    await assertFuzz('stdio', 'stdio URIs (schemes, hosts, escapes, queries, fragments)', [uriText], async (raw) => checkUri(raw), { runs: 500, timeoutMs: 2_000 });
  }, fuzzTestTimeout(500, 100));

});
