/**
 * outrigger-log's record cutting and formats. The splitter must give containerd's CRI logger
 * records for any input however the pipe chunks it: lines end at \n (one \r before it dropped),
 * pieces of exactly maxLen bytes are partial (P), the rest of a line is full (F), an unfinished
 * last line is one more P. The model below states that rule on the whole input at once.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseLogArgs } from '../loggers/outrigger-log/log-args.ts';
import { formatCri, formatJson } from '../loggers/outrigger-log/record-format.ts';
import { CRI_MAX_LINE, RecordSplitter } from '../loggers/outrigger-log/record-splitter.ts';
import type { LogRecord } from '../loggers/outrigger-log/record-splitter.ts';
import { rfc3339Nano, WallClock } from '../loggers/outrigger-log/wall-clock.ts';

function model(input: Buffer, maxLen: number): { content: string; partial: boolean }[] {
  const out: { content: string; partial: boolean }[] = [];
  const text = input.toString('latin1');
  const parts = text.split('\n');
  const tail = parts.pop()!;
  const pieces = (s: string, lastFull: boolean) => {
    const n = Math.max(1, Math.ceil(s.length / maxLen));
    for (let i = 0; i < n; i++) out.push({ content: s.slice(i * maxLen, (i + 1) * maxLen), partial: !(lastFull && i === n - 1) });
  };
  for (const line of parts) pieces(line.endsWith('\r') ? line.slice(0, -1) : line, true);
  if (tail !== '') pieces(tail, false);
  return out;
}

function run(chunks: Buffer[], maxLen: number): { content: string; partial: boolean }[] {
  const s = new RecordSplitter(maxLen);
  const out: LogRecord[] = [];
  for (const c of chunks) s.push(c, out);
  s.end(out);
  return out.map((r) => ({ content: r.content.toString('latin1'), partial: r.partial }));
}

describe('RecordSplitter', () => {
  it('gives the same records as the rule on the whole input, for any chunking', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 200, unit: fc.constantFrom('a', 'b', '\r', '\n', ' ') }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.nat({ max: 200 }), { maxLength: 20 }),
        (text, maxLen, cuts) => {
          const input = Buffer.from(text, 'latin1');
          const points = [...new Set(cuts.filter((c) => c < input.length))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let prev = 0;
          for (const p of [...points, input.length]) {
            chunks.push(input.subarray(prev, p));
            prev = p;
          }
          expect(run(chunks, maxLen)).toEqual(model(input, maxLen));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('matches containerd at the 16 KiB edges', () => {
    const k = CRI_MAX_LINE;
    const a = (n: number) => 'a'.repeat(n);
    const split = (s: string) => run([Buffer.from(s, 'latin1')], k);
    expect(split(`${a(k)}\r\n`)).toEqual([{ content: a(k), partial: false }]);
    expect(split(`${a(k + 1)}\n`)).toEqual([{ content: a(k), partial: true }, { content: 'a', partial: false }]);
    expect(split(`${a(2 * k)}\n`)).toEqual([{ content: a(k), partial: true }, { content: a(k), partial: false }]);
    expect(split('\n\r\n')).toEqual([{ content: '', partial: false }, { content: '', partial: false }]);
    expect(split('no newline')).toEqual([{ content: 'no newline', partial: true }]);
    expect(split('a\rb\n')).toEqual([{ content: 'a\rb', partial: false }]);
    // The \r of a \r\n that arrives in two reads is still dropped, and does not count towards the limit.
    expect(run([Buffer.from(`${a(k)}\r`), Buffer.from('\n')], k)).toEqual([{ content: a(k), partial: false }]);
  });
});

describe('formats', () => {
  it('RFC3339Nano in UTC, trailing zeros dropped as Go does', () => {
    expect(rfc3339Nano(0n)).toBe('1970-01-01T00:00:00Z');
    expect(rfc3339Nano(1_500_000_000n)).toBe('1970-01-01T00:00:01.5Z');
    expect(rfc3339Nano(1_700_000_000_123_456_789n)).toBe('2023-11-14T22:13:20.123456789Z');
    expect(rfc3339Nano(1_700_000_000_000_000_100n)).toBe('2023-11-14T22:13:20.0000001Z');
  });

  it('a CRI line is `<time> <stream> <P|F> <bytes>\\n`, content bytes untouched', () => {
    const content = Buffer.from([0xff, 0x00, 0x41]);
    expect(formatCri('stderr', { content, partial: false }, 1_500_000_000n)).toEqual(
      Buffer.concat([Buffer.from('1970-01-01T00:00:01.5Z stderr F '), content, Buffer.from('\n')]),
    );
    expect(formatCri('stdout', { content: Buffer.from('x'), partial: true }, 0n).toString()).toBe('1970-01-01T00:00:00Z stdout P x\n');
  });

  it('a JSON line is one pino-style object', () => {
    const line = formatJson('stderr', { content: Buffer.from('he said "hi"'), partial: true }, 1_700_000_000_123_456_789n, { containerId: 'c1', namespace: 'ns' });
    expect(line.toString().endsWith('}\n')).toBe(true);
    expect(JSON.parse(line.toString())).toEqual({ level: 50, time: 1_700_000_000_123, container: 'c1', namespace: 'ns', stream: 'stderr', msg: 'he said "hi"', partial: true });
  });

  it('the clock never goes backwards', () => {
    const c = new WallClock();
    let prev = c.nowNs();
    for (let i = 0; i < 10_000; i++) {
      const now = c.nowNs();
      expect(now >= prev).toBe(true);
      prev = now;
    }
  });
});

describe('parseLogArgs', () => {
  it('reads the bare key value pairs a shim passes, in any order', () => {
    expect(parseLogArgs(['maxSize', '10MB', 'path', '/var/log/c.log', 'format', 'json'])).toEqual({ path: '/var/log/c.log', format: 'json', rotation: { maxSize: 10_000_000, maxFiles: 5 } });
    expect(parseLogArgs(['path', '/x.log'])).toEqual({ path: '/x.log', format: 'cri', rotation: undefined });
    expect(parseLogArgs(['path', '/x.log', 'maxSize', '1KiB', 'maxFiles', '2']).rotation).toEqual({ maxSize: 1024, maxFiles: 2 });
  });

  it('refuses what it cannot honour, naming it', () => {
    expect(() => parseLogArgs([])).toThrow(/path is required/);
    expect(() => parseLogArgs(['path'])).toThrow(/key value pairs/);
    expect(() => parseLogArgs(['path', 'rel.log'])).toThrow(/must be absolute/);
    expect(() => parseLogArgs(['path', '/x', 'colour', 'red'])).toThrow(/unknown key "colour"/);
    expect(() => parseLogArgs(['path', '/x', 'format', 'xml'])).toThrow(/format "xml": want cri or json/);
    expect(() => parseLogArgs(['path', '/x', 'maxSize', 'lots'])).toThrow(/maxSize "lots"/);
    expect(() => parseLogArgs(['path', '/x', 'maxFiles', '3'])).toThrow(/maxFiles needs maxSize/);
  });
});
