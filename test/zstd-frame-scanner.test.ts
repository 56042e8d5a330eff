/**
 * The zstd frame scanner: it must agree with the real zstd CLI about where frames are, whatever
 * chunk boundaries the input arrives in, and name the exact byte where a structure breaks.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ZstdFrameScanner, ZstdStructureError, type FrameInfo } from '../processors/zstd/zstd-frame-scanner.ts';
import { skippableFrame, textLike, tool } from './support/zstd-helpers.ts';

function scan(stream: Buffer, cuts: readonly number[]): { frames: FrameInfo[]; error?: ZstdStructureError } {
  const frames: FrameInfo[] = [];
  const scanner = new ZstdFrameScanner({ maxWindowSize: 2 ** 27, onFrame: (f) => frames.push(f) });
  const points = [...new Set([0, ...cuts.map((c) => c % (stream.length + 1)), stream.length])].sort((a, b) => a - b);
  try {
    for (let i = 1; i < points.length; i += 1) scanner.push(stream.subarray(points[i - 1], points[i]));
    scanner.finish();
    return { frames };
  } catch (err) {
    if (err instanceof ZstdStructureError) return { frames, error: err };
    throw err;
  }
}

describe('ZstdFrameScanner', () => {
  const one = tool('zstd', ['-q', '-c', '-B2048'], textLike(20_000, 3));
  const two = tool('zstd', ['-q', '-c', '--no-check'], Buffer.alloc(5000, 7));
  const skip = skippableFrame(Buffer.from('table of contents'), 3);
  const stream = Buffer.concat([skip, one, two, tool('zstd', ['-q', '-c'], Buffer.alloc(0))]);

  it('finds every frame at its offset, the same for any chunking', () => {
    const expected = scan(stream, []);
    expect(expected.error).toBeUndefined();
    expect(expected.frames.map((f) => [f.kind, f.offset])).toEqual([
      ['skippable', 0],
      ['zstd', skip.length],
      ['zstd', skip.length + one.length],
      ['zstd', skip.length + one.length + two.length],
    ]);
    expect(expected.frames[1]!.hasChecksum).toBe(true);
    expect(expected.frames[2]!.hasChecksum).toBe(false);
    expect(expected.frames[3]!.contentSize).toBe(0n);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 40 }), (cuts) => {
        const got = scan(stream, cuts);
        expect(got.error).toBeUndefined();
        expect(got.frames).toEqual(expected.frames);
      }),
      { numRuns: 200 },
    );
  });

  it('names the exact offset of trailing garbage and of a truncation, for any chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 10 }), fc.integer({ min: 1, max: stream.length - 1 }), (cuts, cut) => {
        const garbage = scan(Buffer.concat([stream, Buffer.from('PK\x03\x04')]), cuts);
        expect(garbage.error?.offset).toBe(stream.length);
        expect(garbage.error?.message).toMatch(/trailing garbage at byte \d+ after 4 frame\(s\): bytes 50 4b 03 04/);
        const truncated = scan(stream.subarray(0, cut), cuts);
        const boundary = [skip.length, skip.length + one.length, skip.length + one.length + two.length].includes(cut);
        if (boundary) expect(truncated.error).toBeUndefined();
        else expect(truncated.error?.message).toMatch(new RegExp(`^input truncated at byte ${cut}: it ends inside `));
      }),
      { numRuns: 300 },
    );
  });

  it('rejects reserved bits and block types where they appear', () => {
    const badDescriptor = Buffer.from(one);
    badDescriptor[4] = badDescriptor[4]! | 0x08;
    expect(scan(badDescriptor, []).error?.message).toMatch(/^corrupt frame header at byte 4: reserved bit/);
  });
});
