/**
 * The CRI log reader the e2e tests use (test/support/cri-client.ts): the format containerd's CRI
 * plugin writes (`<RFC3339Nano> <stream> <F|P> <content>`, cri-on-our-machines.md) parses to its
 * parts, and anything else is refused with the file and line number, so a broken log fails loudly.
 */
import { describe, expect, it } from 'vitest';
import { parseCriLog } from './support/cri-client.ts';

describe('parseCriLog', () => {
  it('splits time, stream, tag and content, keeping spaces inside the content', () => {
    const text = '2026-11-22T06:26:58.439865514Z stdout F hello-cri\n2026-11-22T06:26:58.5Z stderr P part of  a line\n';
    expect(parseCriLog(text)).toEqual([
      { time: '2026-11-22T06:26:58.439865514Z', stream: 'stdout', tag: 'F', content: 'hello-cri' },
      { time: '2026-11-22T06:26:58.5Z', stream: 'stderr', tag: 'P', content: 'part of  a line' },
    ]);
  });

  it('accepts an empty line of output and an empty file', () => {
    expect(parseCriLog('2026-11-22T06:26:58Z stdout F \n')).toEqual([{ time: '2026-11-22T06:26:58Z', stream: 'stdout', tag: 'F', content: '' }]);
    expect(parseCriLog('')).toEqual([]);
  });

  it('names the file and line of anything not in the format', () => {
    const text = '2026-11-22T06:26:58Z stdout F ok\nplain text\n';
    expect(() => parseCriLog(text, '/logs/app/0.log')).toThrow('/logs/app/0.log:2: not a CRI log line: "plain text"');
    expect(() => parseCriLog('2026-11-22T06:26:58Z stdin F x\n')).toThrow(/:1: not a CRI log line/);
  });
});
