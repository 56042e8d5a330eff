/**
 * The verifying unpack's concurrent path (inflate-worker.ts): gzip members are inflated on a
 * worker into shared output buffers while this thread walks, hashes and writes them. Output
 * order and member positions must come out exactly as on the single-thread path, and a failure
 * anywhere must leave the output short, never past what was decoded before the fault and never
 * with the held end-of-archive bytes. Also the libdeflate bindings it uses (libdeflate.ts), the
 * decoder's whole-member path against zlib alone, and the TOC read ahead from the compressed
 * input (toc-ahead.ts).
 */
import { spawnSync } from 'node:child_process';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { tarOfFiles } from './support/estargz-blob.ts';
import { buildEstargzBuffer } from '../processors/estargz/build-buffer.ts';
import { SyncDigests } from '../processors/estargz/digests.ts';
import { bindFastCrc32, bindWholeInflate, loadFfiQuietly } from '../processors/estargz/libdeflate.ts';
import { encodeFooter, parseFooter } from '../processors/estargz/footer.ts';
import { bareFileHeader } from '../processors/estargz/tar-encode.ts';
import { padding } from '../src/tar/header.ts';
import { GzipMemberDecoder, type OutputSpace, type WholeMemberInflate } from '../processors/estargz/gzip-members.ts';
import { readTocAhead } from '../processors/estargz/toc-ahead.ts';
import { parseToc } from '../processors/estargz/toc.ts';
import { TAIL_HOLD, unpackLayer, UnpackError, type UnpackResult } from '../processors/estargz/unpack.ts';
import { pinnedBinary } from './support/built-binary.ts';


/** Bytes that compress a little (so members differ in size) and never repeat a long pattern. */
function content(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = (x >>> 24) & 0x3f;
  }
  return b;
}

function tarOf(files: Array<[string, Buffer]>): Promise<Buffer> {
  return tarOfFiles(files, [{ header: { name: 'd/empty', mode: 0o644, mtime: new Date(1_700_000_000_000) }, content: Buffer.alloc(0) }]);
}

async function build(tar: Buffer, chunkSize: number): Promise<{ blob: Buffer; tocDigest: string }> {
  const { blob, report } = await buildEstargzBuffer(tar, { chunkSize, level: 1 });
  return { blob, tocDigest: report.tocDigest };
}

/** Gzip members of a blob: compressed offset and length, and where their output starts and ends. */
function members(blob: Buffer): Array<{ offset: number; length: number; outStart: number; outEnd: number }> {
  const found: Array<{ offset: number; length: number; outStart: number; outEnd: number }> = [];
  let out = 0;
  const decoder = new GzipMemberDecoder({
    memberStart() {},
    data(chunk) {
      out += chunk.length;
    },
    memberEnd(offset, length, uncompressed) {
      found.push({ offset, length, outStart: out - uncompressed, outEnd: out });
    },
  });
  decoder.push(blob);
  decoder.end();
  return found;
}

interface Run {
  out: Buffer;
  result?: UnpackResult;
  error?: Error;
}

/** The unpack on the default (worker) path, or on this thread with `inThread`. */
async function unpack(blob: Buffer, opts: { pieces?: number[]; slowWrites?: boolean; inThread?: boolean; tocDigest?: string } = {}): Promise<Run> {
  const parts: Buffer[] = [];
  const pieces = opts.pieces ?? [blob.length];
  const source = (async function* () {
    let at = 0;
    for (let k = 0; at < blob.length; k++) {
      const n = pieces[k % pieces.length]!;
      yield blob.subarray(at, at + n);
      at += n;
    }
  })();
  const write = opts.slowWrites
    ? async (c: Buffer) => {
        parts.push(Buffer.from(c));
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    : (c: Buffer) => {
        parts.push(Buffer.from(c));
      };
  try {
    const result = await unpackLayer(source, write, { tocDigest: opts.tocDigest, ...(opts.inThread ? { digests: new SyncDigests() } : {}) });
    return { out: Buffer.concat(parts), result };
  } catch (err) {
    return { out: Buffer.concat(parts), error: err as Error };
  }
}

let layer: { blob: Buffer; tocDigest: string; good: Buffer };

beforeAll(async () => {
  // ~17 MB of output: the worker cycles through every one of its 2 MiB output buffers several
  // times; 600 small files make hundreds of members, two large files span several chunks.
  const files: Array<[string, Buffer]> = [];
  for (let i = 0; i < 600; i++) files.push([`d/s${i}`, content(1 + ((i * 7919) % 9000), i)]);
  files.push(['d/big1', content(7 * 1024 * 1024 + 333, 1001)]);
  for (let i = 0; i < 100; i++) files.push([`d/t${i}`, content(200 + i, 2000 + i)]);
  files.push(['d/big2', content(6 * 1024 * 1024 + 77, 1002)]);
  const built = await build(await tarOf(files), 1 << 20);
  layer = { ...built, good: zlib.gunzipSync(built.blob) };
}, 60_000);

describe('eStargz unpack with the inflate worker', () => {
  it('gives the same bytes and the same verification as the single-thread path, for any input cuts and write pacing', async () => {
    const reference = await unpack(layer.blob, { inThread: true, tocDigest: layer.tocDigest });
    expect(reference.error).toBeUndefined();
    expect(reference.out.equals(layer.good)).toBe(true);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 60_000, max: 3 * 1024 * 1024 })), { minLength: 1, maxLength: 5 }),
        fc.boolean(),
        async (pieces, slowWrites) => {
          const run = await unpack(layer.blob, { pieces, slowWrites, tocDigest: layer.tocDigest });
          expect(run.error).toBeUndefined();
          expect(run.out.equals(layer.good)).toBe(true);
          // Member boundaries reached the tar walker at the same output positions: every chunk
          // digest was checked against its own member, as on the single-thread path.
          expect(run.result).toEqual(reference.result);
          expect(run.result!.verified!.chunkDigestsChecked).toBe(run.result!.verified!.chunks);
        },
      ),
      { numRuns: 6 },
    );
  }, 120_000);

  it('a corrupt member in the middle fails the layer; nothing decoded after that member, and never the held tail, is written', async () => {
    const list = members(layer.blob);
    const middle = list.filter((m) => m.length > 2000)[Math.floor(list.filter((m) => m.length > 2000).length / 2)]!;
    // One flipped bit in its deflate data, and separately in its trailer CRC (the data decode
    // fine then; only the CRC check can tell).
    for (const at of [middle.offset + 10 + Math.floor((middle.length - 18) / 2), middle.offset + middle.length - 8]) {
      const bad = Buffer.from(layer.blob);
      bad[at] = bad[at]! ^ 0x04;
      const run = await unpack(bad, { pieces: [1 << 20] });
      expect(run.error, `flip at ${at}`).toBeInstanceOf(UnpackError);
      expect(run.error!.message).toContain(`gzip member at ${middle.offset}`);
      // Output stops before the end of the failing member's output, minus the held tail.
      expect(run.out.length).toBeLessThanOrEqual(middle.outEnd - TAIL_HOLD);
      // What did leave before the failing member is the layer's own bytes.
      const clean = Math.min(run.out.length, middle.outStart);
      expect(run.out.subarray(0, clean).equals(layer.good.subarray(0, clean))).toBe(true);
    }
  }, 60_000);

  it('the built processor exits non-zero on that layer, names the member, and stdout is a short prefix', () => {
    const list = members(layer.blob);
    const middle = list.filter((m) => m.length > 2000)[Math.floor(list.filter((m) => m.length > 2000).length / 2)]!;
    const bad = Buffer.from(layer.blob);
    const at = middle.offset + middle.length - 8;
    bad[at] = bad[at]! ^ 0x01;
    const bin = pinnedBinary('outrigger-estargz');
    try {
      const ok = spawnSync(bin.path, ['unpack'], { input: layer.blob, maxBuffer: 1 << 28, timeout: 60_000 });
      expect(ok.status).toBe(0);
      expect(ok.stdout.equals(layer.good)).toBe(true);
      const r = spawnSync(bin.path, ['unpack'], { input: bad, maxBuffer: 1 << 28, timeout: 60_000 });
      expect(r.status).toBe(1);
      expect(r.stderr.toString()).toContain(`gzip member at ${middle.offset}: CRC32 mismatch`);
      expect(r.stdout.length).toBeLessThanOrEqual(middle.outEnd - TAIL_HOLD);
      expect(r.stdout.equals(layer.good.subarray(0, r.stdout.length))).toBe(true);
    } finally {
      bin.dispose();
    }
  }, 120_000);

  it('a write that fails mid-stream fails the unpack instead of stalling the worker', async () => {
    let writes = 0;
    const failure = new Error('pipe closed by the reader');
    const source = (async function* () {
      for (let at = 0; at < layer.blob.length; at += 1 << 20) yield layer.blob.subarray(at, at + (1 << 20));
    })();
    await expect(
      unpackLayer(source, async () => {
        writes++;
        if (writes === 2) throw failure;
        await new Promise((resolve) => setImmediate(resolve));
      }),
    ).rejects.toBe(failure);
  }, 60_000);

  it('a truncated layer and trailing garbage fail with the single-thread path messages', async () => {
    for (const bad of [layer.blob.subarray(0, layer.blob.length - 30), Buffer.concat([layer.blob, Buffer.from('garbage')])]) {
      const worker = await unpack(bad, { pieces: [1 << 20] });
      const single = await unpack(bad, { inThread: true });
      expect(worker.error).toBeInstanceOf(UnpackError);
      expect(worker.error!.message).toBe(single.error!.message);
      expect(worker.out.length).toBeLessThan(layer.good.length);
    }
  }, 60_000);
});

describe('libdeflate bindings (when the host has libdeflate.so.0)', () => {
  it('agrees with zlib.crc32 for any bytes and any running value', () => {
    const crc = bindFastCrc32(zlib, loadFfiQuietly());
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 64 }), (data, seed, cut) => {
        const buf = Buffer.from(data);
        expect(crc(buf, seed)).toBe(zlib.crc32(buf, seed) >>> 0);
        // Running over two pieces is the CRC of the whole.
        const at = Math.min(cut, buf.length);
        expect(crc(buf.subarray(at), crc(buf.subarray(0, at), 0))).toBe(zlib.crc32(buf) >>> 0);
      }),
    );
    // Shared memory, as the inflate worker's buffers are.
    const shared = Buffer.from(new SharedArrayBuffer(1 << 16)).fill(0x5a);
    expect(crc(shared, 0)).toBe(zlib.crc32(shared) >>> 0);
  });

});

describe('TOC read ahead', () => {
  it("reads the layer's TOC from the member the footer points at, and nothing from anything else", async () => {
    const footer = parseFooter(layer.blob.subarray(-51))!;
    const tail = layer.blob.subarray(footer.tocOffset);
    const ahead = await readTocAhead(footer, tail);
    expect(ahead).toBeDefined();
    expect(ahead!.digest).toBe(layer.tocDigest);
    const tocTar = zlib.gunzipSync(tail.subarray(0, tail.length - footer.size));
    const size = parseInt(tocTar.toString('latin1', 124, 135), 8);
    expect(ahead!.toc).toEqual(parseToc(tocTar.subarray(512, 512 + size)));
    // A data member, a cut member, garbage: no result (the unpack then judges from the stream).
    const list = members(layer.blob);
    expect(await readTocAhead(footer, Buffer.concat([layer.blob.subarray(list[3]!.offset, list[3]!.offset + list[3]!.length), tail.subarray(-51)]))).toBeUndefined();
    expect(await readTocAhead(footer, tail.subarray(1000))).toBeUndefined();
    expect(await readTocAhead(footer, Buffer.alloc(5000, 1))).toBeUndefined();
  });

  it('reads the same TOC whether libdeflate decodes the member whole or zlib streams it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 200_000 }), fc.integer({ min: 0, max: 9 }), async (size, level) => {
        const json = Buffer.from(JSON.stringify({ version: 1, entries: [{ name: 'x'.repeat(size), type: 'dir' }] }));
        const member = zlib.gzipSync(Buffer.concat([bareFileHeader('stargz.index.json', json.length), json, Buffer.alloc(padding(json.length) + 1024)]), { level });
        const footer = parseFooter(encodeFooter(1000))!;
        const whole = await readTocAhead(footer, Buffer.concat([member, encodeFooter(1000)]));
        expect(whole?.content.equals(json)).toBe(true);
        // A trailer whose ISIZE does not match makes the whole decode refuse; zlib then streams it.
        const odd = Buffer.from(member);
        odd.writeUInt32LE(odd.readUInt32LE(odd.length - 4) + 1, odd.length - 4);
        const streamed = await readTocAhead(footer, Buffer.concat([odd, encodeFooter(1000)]));
        expect(streamed?.content.equals(json)).toBe(true);
        expect(streamed?.digest).toBe(whole?.digest);
        expect(streamed?.toc).toEqual(whole?.toc);
      }),
      { numRuns: 40 },
    );
  });
});

/**
 * Decodes `data` with output buffers of `outSize` (swapped when full or when the decoder asks)
 * and input cut at `cut`, optionally trying `whole` on each member: member events, bytes, error.
 */
function decodeWith(data: Buffer, outSize: number, cut: number, whole: WholeMemberInflate | undefined): { events: string[]; out: Buffer; error?: string } {
  const events: string[] = [];
  const parts: Buffer[] = [];
  let produced = 0;
  const decoder = new GzipMemberDecoder({
    memberStart(offset) {
      events.push(`start ${offset} at ${produced}`);
    },
    data(chunk) {
      produced += chunk.length;
    },
    memberEnd(offset, length, uncompressed) {
      events.push(`end ${offset} ${length} ${uncompressed}`);
    },
  });
  const space: OutputSpace = { buffer: Buffer.alloc(outSize), fill: 0 };
  const swap = (): void => {
    parts.push(Buffer.from(space.buffer.subarray(0, space.fill)));
    space.buffer = Buffer.alloc(outSize);
    space.fill = 0;
  };
  decoder.useOutput(space);
  if (whole) decoder.useWholeInflate(whole, Math.min(outSize, 4096), 4096);
  try {
    // As the inflate worker does: unconsumed input is pushed again with the next piece appended.
    let start = 0;
    let end = 0;
    for (;;) {
      if (end < data.length) end = Math.min(data.length, end + cut);
      if (end === data.length) decoder.lastInput();
      const consumed = decoder.push(data.subarray(start, end));
      start += consumed;
      if (start < end && !decoder.wantsInput) swap();
      else if (start === end && end === data.length) break;
    }
    while (!decoder.end()) swap();
    swap();
    return { events, out: Buffer.concat(parts) };
  } catch (err) {
    return { events, out: Buffer.concat(parts), error: (err as Error).message };
  }
}

describe('gzip member decoder with a whole-member inflater', () => {
  const libdeflate = bindWholeInflate(zlib, loadFfiQuietly());

  it('members inflated whole or streamed (any mix, any cuts): the same bytes and boundaries as zlib alone, and a refused member stays refused', () => {
    const whole = libdeflate;
    if (!whole) return expect(bindWholeInflate(zlib, loadFfiQuietly())).toBeUndefined();
    const memberArb = fc.tuple(fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 1000 }));
    fc.assert(
      fc.property(
        fc.array(memberArb, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 512, max: 70_000 }),
        fc.integer({ min: 1, max: 30_000 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 7 }),
        fc.option(fc.nat(), { nil: undefined }),
        (specs, outSize, cut, declines, flip) => {
          const data = Buffer.concat(specs.map(([size, level, seed]) => zlib.gzipSync(content(size, seed), { level })));
          if (flip !== undefined) data[flip % data.length] = data[flip % data.length]! ^ 0x40;
          let call = 0;
          // Declines some members ('fail' as for bad data, 'no-room'), inflates the others whole.
          const mixed: WholeMemberInflate = (input, at, out, outAt) => {
            const decline = declines[call++ % declines.length];
            if (decline) return { status: call % 2 === 0 ? 'fail' : 'no-room', consumed: 0, produced: 0 };
            return whole(input, at, out, outAt);
          };
          const reference = decodeWith(data, outSize, cut, undefined);
          // An error's "(compressed offset N)" is where the failing decoder call began, which
          // depends on how input was cut even with zlib alone; the rest must be the same.
          const reason = (e: string | undefined) => e?.replace(/ \(compressed offset \d+\)$/, '');
          for (const candidate of [decodeWith(data, outSize, cut, whole), decodeWith(data, outSize, cut, mixed)]) {
            if (reference.error === undefined) {
              expect(candidate.error).toBeUndefined();
              expect(candidate.events).toEqual(reference.events);
              expect(candidate.out.equals(reference.out)).toBe(true);
              continue;
            }
            const failing = /gzip member at (\d+)/.exec(reference.error)?.[1];
            if (failing === undefined) {
              // Header, trailer and framing faults: the decoder's own checks, whoever inflates.
              expect(reason(candidate.error)).toBe(reason(reference.error));
              continue;
            }
            // zlib refused this member's deflate data. libdeflate decodes some malformed data
            // zlib refuses (an initial "repeat previous length" code, for one); the member's
            // CRC32 and ISIZE then decide, so it fails there unless the bytes are right anyway.
            if (candidate.error !== undefined && reason(candidate.error) !== reason(reference.error)) {
              expect(candidate.error).toMatch(new RegExp(`^gzip member at ${failing}: (CRC32|length) mismatch`));
            }
            const upTo = reference.events.indexOf(reference.events.find((e) => e.startsWith(`start ${failing} `))!);
            expect(candidate.events.slice(0, upTo + 1)).toEqual(reference.events.slice(0, upTo + 1));
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
