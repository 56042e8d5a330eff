/**
 * processors/zstd decode/compress in-process, against streams made by the real zstd and gzip
 * CLIs and by node:zlib: round trips, every frame shape a layer can contain, and the failure
 * contract (every truncation and corruption is an error with an offset, and the tail of the
 * output is never written after a failure).
 */
import zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compressBuffer, decodeBuffer, skippableFrame, textLike, tool } from './support/zstd-helpers.ts';

/** XORs one byte in place. */
function flip(buf: Buffer, at: number, mask: number): void {
  buf[at] = buf[at]! ^ mask;
}

const zstd = (args: readonly string[], input: Buffer) => tool('zstd', ['-q', ...args], input);

describe('round trips', () => {
  it('our compressor → zstd -d gives the input back, for random and compressible data', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.uint8Array({ maxLength: 300_000 }), fc.integer({ min: 0, max: 400_000 }).map((n) => textLike(n, n + 7))),
        fc.integer({ min: 1, max: 19 }),
        async (bytes, level) => {
          const data = Buffer.from(bytes);
          const compressed = await compressBuffer(data, { level });
          expect(zstd(['-dc'], compressed).equals(data)).toBe(true);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('zstd (CLI) → our decoder gives the input back, whatever the input chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.uint8Array({ maxLength: 300_000 }), fc.integer({ min: 0, max: 400_000 }).map((n) => textLike(n, n + 3))),
        fc.constantFrom(['-1'], ['-3'], ['-19'], ['--no-check'], ['--no-content-size'], ['--long=24']),
        fc.integer({ min: 1, max: 70_000 }),
        async (bytes, args, inputChunk) => {
          const data = Buffer.from(bytes);
          const out = await decodeBuffer(zstd(['-c', ...args], data), { inputChunk });
          expect(out.error).toBeUndefined();
          expect(out.output.equals(data)).toBe(true);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('our compressor writes checksums and the content size like the zstd CLI (zstd -lv reads them)', async () => {
    const data = textLike(100_000, 9);
    const compressed = await compressBuffer(data, { pledgedSize: data.length });
    const frames: { hasChecksum?: boolean; contentSize?: bigint }[] = [];
    const out = await decodeBuffer(compressed, { onFrame: (f) => frames.push(f) });
    expect(out.output.equals(data)).toBe(true);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.hasChecksum).toBe(true);
    expect(frames[0]!.contentSize).toBe(BigInt(data.length));
  });

  it('gzip -c / pigz → our decoder, multi-member gzip included', async () => {
    const a = textLike(200_000, 1);
    const b = Buffer.from(fc.sample(fc.uint8Array({ minLength: 50_000, maxLength: 50_000 }), 1)[0]!);
    const members = Buffer.concat([tool('gzip', ['-c'], a), tool('pigz', ['-c'], b), tool('gzip', ['-9', '-c'], Buffer.alloc(0))]);
    const out = await decodeBuffer(members);
    expect(out.error).toBeUndefined();
    expect(out.result?.format).toBe('gzip');
    expect(out.output.equals(Buffer.concat([a, b]))).toBe(true);
  });
});

describe('frames of every kind', () => {
  const a = textLike(150_000, 11);
  const b = Buffer.alloc(300_000); // RLE blocks
  const c = Buffer.from(fc.sample(fc.uint8Array({ minLength: 40_000, maxLength: 40_000 }), 1)[0]!); // raw blocks

  it('concatenated frames from different writers decode to the concatenation', async () => {
    const stream = Buffer.concat([
      zstd(['-c'], a),
      zstd(['-c', '--no-check', '--no-content-size'], b),
      zlib.zstdCompressSync(c), // node:zlib defaults: no checksum
      zstd(['-c'], Buffer.alloc(0)), // an empty frame
      zlib.zstdCompressSync(a, { params: { [zlib.constants.ZSTD_c_checksumFlag]: 1 }, pledgedSrcSize: a.length }),
    ]);
    const frames: string[] = [];
    const out = await decodeBuffer(stream, { onFrame: (f) => frames.push(`${f.kind}@${f.offset}`) });
    expect(out.error).toBeUndefined();
    expect(out.output.equals(Buffer.concat([a, b, c, a]))).toBe(true);
    expect(out.result?.frames).toEqual({ zstd: 5, skippable: 0 });
    expect(frames[0]).toBe('zstd@0');
  });

  it('skips skippable frames at the start, between frames and at the end (zstd:chunked keeps its TOC there)', async () => {
    const stream = Buffer.concat([
      skippableFrame(Buffer.from('{"toc": "manifest at the start"}'), 0),
      zstd(['-c'], a),
      skippableFrame(Buffer.alloc(0), 5),
      skippableFrame(textLike(70_000, 2), 15),
      zstd(['-c'], c),
      skippableFrame(Buffer.from('footer'), 8),
    ]);
    expect(zstd(['-dc'], stream).equals(Buffer.concat([a, c]))).toBe(true); // the reference agrees
    const out = await decodeBuffer(stream, { inputChunk: 777 });
    expect(out.error).toBeUndefined();
    expect(out.output.equals(Buffer.concat([a, c]))).toBe(true);
    expect(out.result?.frames).toEqual({ zstd: 2, skippable: 4 });
  });

  it('an input holding only an empty frame decodes to nothing, successfully', async () => {
    const out = await decodeBuffer(zstd(['-c'], Buffer.alloc(0)));
    expect(out.error).toBeUndefined();
    expect(out.output.length).toBe(0);
  });

  it('refuses a window above the limit with a message naming the frame and the flag, and accepts it when raised', async () => {
    const data = Buffer.concat([textLike(50_000, 4), Buffer.alloc(1), textLike(50_000, 4)]);
    const wide = zstd(['-c', '--long=28', '--no-content-size'], data);
    const refused = await decodeBuffer(wide, { maxWindowSize: 2 ** 27 });
    expect(refused.error?.message).toMatch(/frame at byte 0 needs a 256 MiB window, above the limit of 128 MiB.*--long=28/);
    expect(refused.output.length).toBe(0);
    const accepted = await decodeBuffer(wide, { maxWindowSize: 2 ** 28 });
    expect(accepted.error).toBeUndefined();
    expect(accepted.output.equals(data)).toBe(true);
  });
});

describe('failure is loud', () => {
  const data = Buffer.concat([textLike(3000, 5), Buffer.alloc(2000, 0x41), textLike(2000, 6)]);
  const zstdStream = Buffer.concat([
    zstd(['-c', '-B1024'], data.subarray(0, 4000)), // several blocks
    skippableFrame(Buffer.from('skippable')),
    zstd(['-c'], data.subarray(4000)),
  ]);
  const gzipFirst = tool('gzip', ['-c'], data.subarray(0, 4000));
  const gzipStream = Buffer.concat([gzipFirst, tool('gzip', ['-c'], data.subarray(4000))]);
  const zstdFirst = zstd(['-c', '-B1024'], data.subarray(0, 4000)).length;
  // A cut exactly between frames/members leaves a valid shorter stream: no format can tell
  // (containerd's diff_id check does). Those cuts must decode to exactly the matching prefix.
  const boundaries = {
    zstd: new Map([
      [zstdFirst, 4000],
      [zstdFirst + 17, 4000],
    ]),
    gzip: new Map([[gzipFirst.length, 4000]]),
  };

  for (const [name, stream] of [
    ['zstd', zstdStream],
    ['gzip', gzipStream],
  ] as const) {
    it(`${name}: truncation at every byte offset is an error that names the offset, and the output stays short`, async () => {
      expect((await decodeBuffer(stream)).output.equals(data)).toBe(true);
      for (let cut = 0; cut < stream.length; cut += 1) {
        const out = await decodeBuffer(stream.subarray(0, cut), { inputChunk: 97, chunkSize: 4096 });
        const boundary = boundaries[name].get(cut);
        if (boundary !== undefined) {
          expect(out.error, `cut at frame boundary ${cut}`).toBeUndefined();
          expect(out.output.equals(data.subarray(0, boundary))).toBe(true);
          continue;
        }
        expect(out.error, `cut at ${cut}`).toBeDefined();
        expect(out.error!.message, `cut at ${cut}`).toMatch(cut === 0 ? /empty/ : new RegExp(`byte ${cut}\\b|bytes [0-9a-f ]+`));
        expect(out.output.length, `cut at ${cut}`).toBeLessThan(data.length);
        expect(data.subarray(0, out.output.length).equals(out.output), `cut at ${cut}: output is a prefix`).toBe(true);
      }
    });

    it(`${name}: a flipped bit anywhere either fails or, where the format cannot tell, changes nothing`, async () => {
      let detected = 0;
      for (let i = 0; i < stream.length; i += 1) {
        const bad = Buffer.from(stream);
        flip(bad, i, 1 << (i % 8));
        const out = await decodeBuffer(bad, { chunkSize: 4096 });
        if (out.error) {
          detected += 1;
          expect(out.error.message, `flip at ${i}`).toMatch(/bytes? \d+/);
          expect(out.output.length).toBeLessThan(data.length);
        } else {
          // Header fields nobody checks (gzip MTIME/OS, a zstd window descriptor grown, skippable bodies).
          expect(out.output.equals(data), `flip at ${i} decoded to different bytes without an error`).toBe(true);
        }
      }
      expect(detected).toBeGreaterThan(stream.length * 0.8);
    });
  }

  it('zstd without a checksum: a flip inside a raw block is NOT detectable (why layers should keep --check)', async () => {
    const random = Buffer.from(fc.sample(fc.uint8Array({ minLength: 5000, maxLength: 5000 }), 1)[0]!);
    const unchecked = zstd(['-c', '--no-check'], random);
    const bad = Buffer.from(unchecked);
    flip(bad, unchecked.length - 100, 0x01);
    const out = await decodeBuffer(bad);
    expect(out.error).toBeUndefined();
    expect(out.output.equals(random)).toBe(false);
    // The same flip with the checksum on is caught.
    const checked = zstd(['-c'], random);
    const bad2 = Buffer.from(checked);
    flip(bad2, checked.length - 104, 0x01);
    expect((await decodeBuffer(bad2)).error?.message).toMatch(/checksum mismatch/);
  });

  it('a wrong checksum in the very last bytes still withholds the final output chunk', async () => {
    const bad = Buffer.from(zstdStream);
    flip(bad, bad.length - 1, 0xff); // last byte of the last frame's checksum
    const out = await decodeBuffer(bad, { chunkSize: 1024 });
    expect(out.error?.message).toMatch(/content checksum mismatch/);
    expect(out.output.length).toBeLessThan(data.length);
  });

  it('zstd: trailing garbage after the last frame is an error at its exact offset', async () => {
    const out = await decodeBuffer(Buffer.concat([zstdStream, Buffer.from('garbage')]));
    expect(out.error?.message).toMatch(new RegExp(`trailing garbage at byte ${zstdStream.length}\\b`));
    expect(out.error?.offset).toBe(zstdStream.length);
    expect(out.output.length).toBeLessThan(data.length);
  });

  it('gzip: trailing garbage, a wrong CRC-32 and a wrong length are errors', async () => {
    const garbage = await decodeBuffer(Buffer.concat([gzipStream, Buffer.from('garbage')]));
    expect(garbage.error?.message).toMatch(/not another gzip member/);
    const crc = Buffer.from(gzipStream);
    flip(crc, crc.length - 8, 0x10);
    expect((await decodeBuffer(crc)).error?.message).toMatch(/CRC-32 mismatch/);
    const len = Buffer.from(gzipStream);
    flip(len, len.length - 4, 0x10);
    expect((await decodeBuffer(len)).error?.message).toMatch(/length mismatch/);
  });

  it('input that is neither zstd nor gzip is refused, or passed through unchanged when asked (zstd -dcf)', async () => {
    const tar = Buffer.from('ustar-ish plain bytes, not compressed');
    expect((await decodeBuffer(tar)).error?.message).toMatch(/^not zstd or gzip data at byte 0: input starts with bytes 75 73 74 61/);
    const passed = await decodeBuffer(tar, { passThrough: true });
    expect(passed.result?.format).toBe('raw');
    expect(passed.output.equals(tar)).toBe(true);
  });
});

describe('stream-processor output: a failed tar is cut at an entry boundary', () => {
  // Entries of known sizes; a tar entry is a 512-byte header plus its data padded to 512.
  const sizes = [100, 0, 5000, 3 * 1024 * 1024 + 7, 70_000, 1, 600_000];
  const entries = sizes.map((size, i) => ({ name: `f${i}`, content: textLike(size, i + 40) }));
  function tar(): Buffer {
    const blocks: Buffer[] = [];
    for (const e of entries) {
      const h = Buffer.alloc(512);
      h.write(e.name, 0);
      h.write('0000644\0', 100);
      h.write('0000000\0', 108);
      h.write('0000000\0', 116);
      h.write(`${e.content.length.toString(8).padStart(11, '0')}\0`, 124);
      h.write('00000000000\0', 136);
      h.write('0', 156);
      h.write('ustar\x0000', 257);
      h.fill(0x20, 148, 156);
      let sum = 0;
      for (const b of h) sum += b;
      h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
      blocks.push(h, e.content, Buffer.alloc((512 - (e.content.length % 512)) % 512));
    }
    blocks.push(Buffer.alloc(1024));
    return Buffer.concat(blocks);
  }
  const archive = tar();
  const boundaries = new Set<number>([0]);
  let at = 0;
  for (const e of entries) {
    at += 512 + Math.ceil(e.content.length / 512) * 512;
    boundaries.add(at);
  }
  boundaries.add(at + 512);

  it('the system tar reads our test archive (so the boundaries below are real)', () => {
    const listing = tool('tar', ['-tvf', '-'], archive).toString();
    expect(listing.trim().split('\n')).toHaveLength(entries.length);
  });

  it('whatever byte is corrupted, the output ends exactly at an entry boundary before the end', async () => {
    const stream = zstd(['-c', '-B65536'], archive);
    const step = Math.max(1, Math.floor(stream.length / 60));
    for (let i = 20; i < stream.length; i += step) {
      const bad = Buffer.from(stream);
      flip(bad, i, 0x20);
      const out = await decodeBuffer(bad, { chunkSize: 256 * 1024, tarHoldBytes: 4 * 1024 * 1024 });
      if (!out.error) {
        expect(out.output.equals(archive), `flip at ${i}`).toBe(true);
        continue;
      }
      expect(boundaries.has(out.output.length), `flip at ${i}: cut at ${out.output.length}`).toBe(true);
      expect(out.output.length, `flip at ${i}`).toBeLessThan(archive.length - 1024);
    }
  });

  it('a truncated layer is cut at the last boundary it completed', async () => {
    const stream = zstd(['-c'], archive);
    const out = await decodeBuffer(stream.subarray(0, Math.floor(stream.length * 0.9)), { chunkSize: 256 * 1024, tarHoldBytes: 4 * 1024 * 1024 });
    expect(out.error?.message).toMatch(/input truncated at byte/);
    expect(boundaries.has(out.output.length)).toBe(true);
    expect(out.output.length).toBeGreaterThan(0);
  });
});
