/**
 * Parsing of stdio URIs (Go url.Parse semantics for what the shim uses: scheme, decoded path,
 * query key → values) and of maxSize units. Property tests build URIs from arbitrary parts with
 * a real encoder and check the parser gets the parts back.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StdioError } from '../src/stdio/process-io.ts';
import { parseSize, SizeError } from '../src/stdio/size-units.ts';
import { firstValues, parseStdioUri } from '../src/stdio/stdio-uri.ts';

const segment = fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' }).filter((s) => !s.includes('\0'));
const queryPart = fc.string({ maxLength: 10, unit: 'grapheme' });

describe('parseStdioUri', () => {
  it('gets back any absolute path and any query built with encodeURIComponent', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('file', 'binary', 'binary-v2', 'FILE'),
        fc.array(segment, { minLength: 1, maxLength: 5 }),
        fc.array(fc.tuple(queryPart, queryPart), { maxLength: 6 }),
        (scheme, segments, pairs) => {
          const path = `/${segments.join('/')}`;
          const encodedPath = `/${segments.map(encodeURIComponent).join('/')}`;
          const query = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
          const uri = parseStdioUri(`${scheme}://${encodedPath}${query ? `?${query}` : ''}`);
          expect(uri.scheme).toBe(scheme.toLowerCase());
          expect(uri.path).toBe(path);
          const expected = new Map<string, string[]>();
          for (const [k, v] of pairs) {
            expected.set(k, [...(expected.get(k) ?? []), v]);
          }
          expect(uri.query).toEqual(expected);
        },
      ),
    );
  });

  it('reads the query as Go does: + is a space, a bare key has "", only the first value becomes an argument', () => {
    const uri = parseStdioUri('binary:///usr/bin/my%20logger?addr=a+b&flag&addr=second&x=%2F');
    expect(uri.path).toBe('/usr/bin/my logger');
    expect([...uri.query]).toEqual([['addr', ['a b', 'second']], ['flag', ['']], ['x', ['/']]]);
    expect(firstValues(uri.query)).toEqual([['addr', 'a b'], ['flag', ''], ['x', '/']]);
    expect(parseStdioUri('file:///var/log/c.log#frag').path).toBe('/var/log/c.log');
  });

  it('refuses a host part (a missing third slash) and bad escapes by name instead of writing elsewhere', () => {
    expect(() => parseStdioUri('file://var/log/c.log')).toThrow(/has host "var"; the path must be absolute, e.g. file:\/\/\/var\/log\/c.log/);
    expect(() => parseStdioUri('file://')).toThrow(StdioError);
    expect(() => parseStdioUri('file:///a%zz')).toThrow(/bad percent escape in path/);
    expect(() => parseStdioUri('binary:///x?a=1;b=2')).toThrow(/semicolon/);
    expect(() => parseStdioUri('/just/a/path')).toThrow(/not of the form/);
  });
});

describe('parseSize', () => {
  const units: [string, number][] = [['', 1], ['B', 1], ['K', 1e3], ['KB', 1e3], ['MB', 1e6], ['GB', 1e9], ['KiB', 1024], ['MiB', 1024 ** 2], ['GiB', 1024 ** 3]];

  it('multiplies a whole number by its unit, whatever the case of the unit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.constantFrom(...units), fc.boolean(), (n, [unit, factor], lower) => {
        expect(parseSize(`${n}${lower ? unit.toLowerCase() : unit}`)).toBe(n * factor);
      }),
    );
  });

  it('takes decimals (rounded down to bytes) and refuses zero, negatives and unknown units by name', () => {
    expect(parseSize('1.5MiB')).toBe(1572864);
    expect(parseSize('100MB')).toBe(100_000_000);
    expect(parseSize(' 10 kib ')).toBe(10240);
    for (const bad of ['0', '0MB', '-1MB', 'MB', '10TB', '1e6', '', '10 M B', '0.0001B']) {
      expect(() => parseSize(bad, 'maxSize')).toThrow(SizeError);
    }
    expect(() => parseSize('10XB', 'maxSize')).toThrow(/maxSize "10XB": want a number with an optional unit/);
  });
});
