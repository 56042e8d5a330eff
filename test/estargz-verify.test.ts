/**
 * The verifying unpack rejects damaged and inconsistent eStargz layers, and when it does, the
 * output stops before its end (the end-of-archive marker never leaves), so containerd's diff_id
 * check fails even if it misses our exit status.
 */
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { assembleEstargz, tarOfFiles } from './support/estargz-blob.ts';
import { buildEstargzBuffer } from '../processors/estargz/build-buffer.ts';
import { encodeFooter, encodeLegacyFooter, parseFooter } from '../processors/estargz/footer.ts';
import { SyncDigests } from '../processors/estargz/digests.ts';
import { GzipMemberDecoder } from '../processors/estargz/gzip-members.ts';
import { padding } from '../src/tar/header.ts';
import { bareFileHeader } from '../processors/estargz/tar-encode.ts';
import { parseToc, serializeToc, type Toc } from '../processors/estargz/toc.ts';
import { TAIL_HOLD, unpackLayer, UnpackError } from '../processors/estargz/unpack.ts';


function smallTar(files: Array<[string, Buffer]>): Promise<Buffer> {
  return tarOfFiles(files, [{ header: { name: 'd/l', type: 'symlink', linkname: 'a' } }]);
}

async function build(tar: Buffer, chunkSize: number): Promise<{ blob: Buffer; tocDigest: string }> {
  const { blob, report } = await buildEstargzBuffer(tar, { chunkSize, level: 1 });
  return { blob, tocDigest: report.tocDigest };
}

/**
 * Runs the unpack; returns what was written, and the error if it failed. Hashes on this thread
 * (SyncDigests): thousands of runs here, and the worker-thread path is what the other tests use.
 */
async function tryUnpack(blob: Buffer, tocDigest?: string): Promise<{ out: Buffer; error?: Error }> {
  const parts: Buffer[] = [];
  try {
    await unpackLayer((async function* () {
      yield blob;
    })(), (c) => {
      parts.push(Buffer.from(c));
    }, { tocDigest, digests: new SyncDigests() });
    return { out: Buffer.concat(parts) };
  } catch (err) {
    return { out: Buffer.concat(parts), error: err as Error };
  }
}

/** Replaces the TOC of a blob (keeping the data members and their offsets) and re-seals it. */
function withToc(blob: Buffer, edit: (toc: Toc) => void, legacy = false): Buffer {
  const footer = parseFooter(blob.subarray(-51))!;
  const tocTar = zlib.gunzipSync(blob.subarray(footer.tocOffset, blob.length - 51));
  const size = parseInt(tocTar.toString('latin1', 124, 135), 8);
  const toc = parseToc(tocTar.subarray(512, 512 + size));
  edit(toc);
  const json = serializeToc(toc);
  const member = zlib.gzipSync(Buffer.concat([bareFileHeader('stargz.index.json', json.length), json, Buffer.alloc(padding(json.length) + 1024)]));
  return Buffer.concat([blob.subarray(0, footer.tocOffset), member, legacy ? encodeLegacyFooter(footer.tocOffset) : encodeFooter(footer.tocOffset)]);
}

describe('estargz unpack verification', () => {
  // "Detected" can only mean: the decoded stream would differ. Some changes decode to the very
  // same bytes (gzip header MTIME/XFL/OS and the FTEXT hint, deflate padding bits, a distance
  // bit inside a run of zeros); no reader can tell those apart, the diff_id stays right, and only
  // the blob digest containerd checks on ingest covers them. Everything else must fail.
  it('every single-byte corruption of a small blob that changes the decoded stream fails the unpack', async () => {
    const tar = await smallTar([['d/a', Buffer.from('a'.repeat(300) + 'tail')], ['d/b', Buffer.from('0123456789'.repeat(70))]]);
    const { blob } = await build(tar, 256);
    const good = zlib.gunzipSync(blob);
    expect((await tryUnpack(blob)).out.equals(good)).toBe(true);
    let detected = 0;
    let inert = 0;
    for (let i = 0; i < blob.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(blob);
        bad[i] = bad[i]! ^ mask;
        const { out, error } = await tryUnpack(bad);
        if (error) {
          detected++;
          // The end-of-archive marker never left: the output is short of a complete stream.
          expect(out.length, `byte ${i} mask ${mask}`).toBeLessThan(good.length);
          continue;
        }
        inert++;
        expect(out.equals(good), `byte ${i} ^ ${mask.toString(16)} changed the output unnoticed`).toBe(true);
        let gunzipped: Buffer | undefined;
        try {
          gunzipped = zlib.gunzipSync(bad);
        } catch {
          gunzipped = undefined;
        }
        expect(gunzipped?.equals(good), `byte ${i} ^ ${mask.toString(16)}: zlib sees a change we did not`).toBe(true);
      }
    }
    expect(detected + inert).toBe(blob.length * 3);
    expect(inert).toBeLessThan(blob.length / 4);
  });

  it('a TOC whose chunk digest disagrees with the data fails, naming the entry and offset, before the end of the output', async () => {
    const tar = await smallTar([['d/a', Buffer.alloc(1000, 1)]]);
    const { blob } = await build(tar, 256);
    const bad = withToc(blob, (toc) => {
      const chunk = toc.entries.filter((e) => e.type === 'chunk')[1]!;
      chunk.chunkDigest = `sha256:${'0'.repeat(64)}`;
    });
    const { out, error } = await tryUnpack(bad);
    expect(error).toBeInstanceOf(UnpackError);
    expect(error!.message).toMatch(/TOC entry \d+ "d\/a" chunk at file offset 512 \(TOC offset \d+\): chunk digest mismatch/);
    expect(out.length).toBe(zlib.gunzipSync(bad).length - TAIL_HOLD);
  });

  it('fails on a wrong file digest, a wrong offset, a missing entry, a wrong size, a wrong name', async () => {
    const tar = await smallTar([['d/a', Buffer.alloc(1000, 1)], ['d/b', Buffer.from('bee')]]);
    const { blob } = await build(tar, 256);
    const cases: Array<[string, (t: Toc) => void, RegExp]> = [
      ['digest', (t) => { t.entries.find((e) => e.name === 'd/b')!.digest = `sha256:${'1'.repeat(64)}`; }, /"d\/b".*file digest mismatch/],
      ['offset', (t) => { t.entries.find((e) => e.name === 'd/b')!.offset! += 1; }, /"d\/b".*no gzip member starts at compressed offset/],
      ['missing', (t) => { t.entries = t.entries.filter((e) => e.name !== 'd/l'); }, /"d\/l" at tar offset \d+ is not in the TOC/],
      ['size', (t) => { t.entries.find((e) => e.name === 'd/b')!.size = 4; }, /"d\/b".*size 4 in the TOC, 3 in the tar/],
      ['name', (t) => { t.entries.find((e) => e.name === 'd/b')!.name = 'd/c'; }, /"d\/c".*the tar entry there is named "d\/b"/],
      ['chunk gap', (t) => { t.entries = t.entries.filter((e) => !(e.type === 'chunk' && e.chunkOffset === 256)); }, /chunk covers file bytes 512-767, expected one starting at 256/],
    ];
    for (const [what, edit, message] of cases) {
      const { error } = await tryUnpack(withToc(blob, edit));
      expect(error?.message, what).toMatch(message);
    }
  });

  it('checks the TOC digest when one is required, and refuses a plain gzip layer then', async () => {
    const tar = await smallTar([['d/a', Buffer.from('x')]]);
    const { blob, tocDigest } = await build(tar, 256);
    expect((await tryUnpack(blob, tocDigest)).error).toBeUndefined();
    const wrong = `sha256:${createHash('sha256').update('other').digest('hex')}`;
    expect((await tryUnpack(blob, wrong)).error?.message).toMatch(/TOC digest mismatch: required sha256:/);
    expect((await tryUnpack(zlib.gzipSync(tar), tocDigest)).error?.message).toMatch(/not eStargz .* but TOC digest .* was required/);
  });

  it('verifies legacy stargz (47-byte footer, no chunk digests) through the file digests', async () => {
    const tar = await smallTar([['d/a', Buffer.alloc(700, 3)]]);
    const { blob } = await build(tar, 256);
    const legacy = withToc(blob, (t) => {
      for (const e of t.entries) delete e.chunkDigest;
    }, true);
    const parts: Buffer[] = [];
    const result = await unpackLayer((async function* () {
      yield legacy;
    })(), (c) => {
      parts.push(Buffer.from(c));
    });
    expect(result.format).toBe('legacy-stargz');
    expect(result.verified!.chunksCoveredByFileDigest).toBe(result.verified!.chunks);
    expect(Buffer.concat(parts).equals(zlib.gunzipSync(legacy))).toBe(true);
    const broken = withToc(blob, (t) => {
      for (const e of t.entries) delete e.chunkDigest;
      t.entries.find((e) => e.name === 'd/a')!.digest = `sha256:${'2'.repeat(64)}`;
    }, true);
    expect((await tryUnpack(broken)).error?.message).toMatch(/legacy stargz verification failed: .*"d\/a".*file digest mismatch/);
  });

  /**
   * Repacks a blob the way `--estargz-min-chunk-size` does (estargz.md §3.3): the landmark's
   * header alone in member 0, everything else of the data in one member, so every payload is
   * addressed by (that member's offset, innerOffset) and several chunks share an offset.
   */
  function repackWithInnerOffsets(blob: Buffer): Buffer {
    const starts = new Map<number, number>();
    let uncompressed = 0;
    const decoder = new GzipMemberDecoder({
      memberStart: (offset) => starts.set(offset, uncompressed),
      data: (c) => {
        uncompressed += c.length;
      },
      memberEnd: () => {},
    });
    decoder.push(blob);
    decoder.end();
    const footer = parseFooter(blob.subarray(-51))!;
    const data = zlib.gunzipSync(blob.subarray(0, footer.tocOffset));
    const first = zlib.gzipSync(data.subarray(0, 512));
    const rest = zlib.gzipSync(data.subarray(512));
    const repacked = Buffer.concat([first, rest]);
    const tocTar = zlib.gunzipSync(blob.subarray(footer.tocOffset, blob.length - 51));
    const toc = parseToc(tocTar.subarray(512, 512 + parseInt(tocTar.toString('latin1', 124, 135), 8)));
    for (const e of toc.entries) {
      if (e.offset === undefined) continue;
      const at = starts.get(e.offset)! + (e.innerOffset ?? 0);
      e.offset = first.length;
      e.innerOffset = at - 512;
    }
    const json = serializeToc(toc);
    const member = zlib.gzipSync(Buffer.concat([bareFileHeader('stargz.index.json', json.length), json, Buffer.alloc(padding(json.length) + 1024)]));
    return Buffer.concat([repacked, member, encodeFooter(repacked.length)]);
  }

  it('verifies innerOffset layers (chunks sharing one offset), keyed by entry; a wrong innerOffset fails', async () => {
    const tar = await smallTar([['d/a', Buffer.alloc(1000, 5)], ['d/b', Buffer.from('bee')]]);
    const { blob } = await build(tar, 256);
    const packed = repackWithInnerOffsets(blob);
    const toc = zlib.gunzipSync(packed.subarray(parseFooter(packed.subarray(-51))!.tocOffset, packed.length - 51));
    const offsets = parseToc(toc.subarray(512, 512 + parseInt(toc.toString('latin1', 124, 135), 8))).entries.filter((e) => e.offset !== undefined).map((e) => e.offset);
    expect(new Set(offsets).size).toBe(1); // Go's VerifyTOC would say "offset found twice"
    const parts: Buffer[] = [];
    const result = await unpackLayer((async function* () {
      yield packed;
    })(), (c) => {
      parts.push(Buffer.from(c));
    });
    expect(Buffer.concat(parts).equals(zlib.gunzipSync(packed))).toBe(true);
    expect(result.format).toBe('estargz');
    expect(result.verified!.chunks).toBe(1 + 4 + 1); // landmark, d/a in 4 chunks, d/b
    // One-chunk files are still a whole segment and get their chunk digest compared; d/a's four
    // chunks lie inside one segment and are covered by its file digest.
    expect(result.verified!.chunkDigestsChecked).toBe(2);
    expect(result.verified!.chunksCoveredByFileDigest).toBe(4);
    const shifted = withToc(packed, (t) => {
      t.entries.filter((e) => e.type === 'chunk')[0]!.innerOffset! += 1;
    });
    expect((await tryUnpack(shifted)).error?.message).toMatch(/"d\/a" chunk at file offset 256 .*offset\/innerOffset point at uncompressed byte \d+, the chunk is at \d+/);
    const lying = withToc(packed, (t) => {
      t.entries.find((e) => e.name === 'd/a' && e.type === 'reg')!.digest = `sha256:${'3'.repeat(64)}`;
    });
    expect((await tryUnpack(lying)).error?.message).toMatch(/"d\/a".*file digest mismatch/);
  });

  it('a damaged footer does not turn verification off', async () => {
    const tar = await smallTar([['d/a', Buffer.from('x')]]);
    const { blob } = await build(tar, 256);
    const bad = Buffer.from(blob);
    bad[bad.length - 51 + 33] = 'X'.charCodeAt(0); // STARGZ → SXARGZ
    expect((await tryUnpack(bad)).error?.message).toMatch(/eStargz structure .* but no intact eStargz footer/);
  });

  /** Member offsets and compressed lengths, in order. */
  function members(blob: Buffer): Array<{ offset: number; length: number }> {
    const found: Array<{ offset: number; length: number }> = [];
    const decoder = new GzipMemberDecoder({
      memberStart: () => {},
      data: () => {},
      memberEnd: (offset, length) => found.push({ offset, length }),
    });
    decoder.push(blob);
    decoder.end();
    return found;
  }

  it('checks every member CRC32 on the inflate worker too: a wrong trailer CRC fails before the end, whichever thread checks', async () => {
    // A trailer CRC changes no decoded byte, so only the CRC check itself can catch it. By default
    // the inflate worker (inflate-worker.ts) decodes and checks; with SyncDigests everything runs
    // on this thread. Both must fail the same way.
    const tar = await smallTar([['d/a', Buffer.alloc(3000, 7)], ['d/b', Buffer.from('bee'.repeat(100))]]);
    const { blob } = await build(tar, 1024);
    const good = zlib.gunzipSync(blob);
    const list = members(blob);
    // The first member holds the landmark's header only; take data members after it, and the last
    // before the TOC's.
    for (const m of [list[1]!, list[list.length - 3]!]) {
      const bad = Buffer.from(blob);
      bad[m.offset + m.length - 8] = bad[m.offset + m.length - 8]! ^ 0x10;
      for (const sync of [false, true]) {
        const parts: Buffer[] = [];
        let error: unknown;
        try {
          await unpackLayer((async function* () {
            yield bad;
          })(), (c) => {
            parts.push(Buffer.from(c));
          }, sync ? { digests: new SyncDigests() } : {});
        } catch (err) {
          error = err;
        }
        expect(error, `member ${m.offset}, sync ${sync}`).toBeInstanceOf(UnpackError);
        expect((error as Error).message).toContain(`gzip member at ${m.offset}: CRC32 mismatch`);
        expect(Buffer.concat(parts).length).toBeLessThan(good.length);
      }
    }
  });

  it('unpacks through the worker in many small input pieces and output larger than one staging buffer, byte for byte', async () => {
    // Exercises the output side's buffer swaps (the decoder stops mid-member when a 1 MiB buffer
    // is full) and input split at every kind of boundary.
    const big = Buffer.alloc(3 * 1024 * 1024 + 12345);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) >>> 5;
    const tar = await smallTar([['d/a', big], ['d/b', Buffer.from('tail')]]);
    const { blob, tocDigest } = await build(tar, 1 << 20);
    const parts: Buffer[] = [];
    const result = await unpackLayer((async function* () {
      for (let i = 0; i < blob.length; i += 4093) yield blob.subarray(i, i + 4093);
    })(), async (c) => {
      parts.push(Buffer.from(c));
      await new Promise((resolve) => setImmediate(resolve));
    }, { tocDigest });
    expect(result.format).toBe('estargz');
    expect(result.verified!.chunkDigestsChecked).toBe(result.verified!.chunks);
    expect(Buffer.concat(parts).equals(zlib.gunzipSync(blob))).toBe(true);
    expect(result.outputBytes).toBe(zlib.gunzipSync(blob).length);
  });
  it('refuses a layer with a second stargz.index.json entry before the TOC, on both unpack paths', async () => {
    // Upstream's builder drops input entries of that name, and the walker hashes none: a look-alike
    // is refused by name, before any digest is compared.
    const { blob, tar } = assembleEstargz([
      { name: 'a', content: Buffer.from('a\n') },
      { name: 'stargz.index.json', content: Buffer.from('{"version":1,"entries":[]}') },
      { name: 'b', content: Buffer.from('b\n') },
    ]);
    const single = await tryUnpack(blob);
    expect(single.error).toBeInstanceOf(UnpackError);
    expect(single.error!.message).toMatch(/a second stargz\.index\.json entry, at tar offset 1024, before the TOC/);
    expect(single.out.length).toBeLessThanOrEqual(tar.length - TAIL_HOLD);
    const parts: Buffer[] = [];
    const onWorker = await unpackLayer((async function* () {
      yield blob;
    })(), (c) => {
      parts.push(Buffer.from(c));
    }).catch((err: unknown) => err);
    expect(onWorker).toBeInstanceOf(UnpackError);
    expect((onWorker as Error).message).toBe(single.error!.message);
    expect(Buffer.concat(parts).length).toBeLessThanOrEqual(tar.length - TAIL_HOLD);
  });

  it('takes the rest of its input through readInto after the source, on either thread: the same output and result as from the source alone', async () => {
    const tar = await smallTar([['d/a', Buffer.alloc(70_000, 3)], ['d/b', Buffer.from('bee'.repeat(3000))]]);
    const { blob, tocDigest } = await build(tar, 4096);
    const good = zlib.gunzipSync(blob);
    for (const [head, sync] of [[0, false], [4, false], [333, true], [4, true]] as const) {
      let at = head;
      // Fills what it is given unless the input ends, as io.ts Input.readInto does; odd sizes.
      const readInto = async (buffer: Buffer): Promise<number> => {
        const n = Math.min(buffer.length, blob.length - at);
        blob.copy(buffer, 0, at, at + n);
        at += n;
        return n;
      };
      const parts: Buffer[] = [];
      const result = await unpackLayer((async function* () {
        if (head > 0) yield blob.subarray(0, head);
      })(), (c) => {
        parts.push(Buffer.from(c));
      }, { tocDigest, readInto, ...(sync ? { digests: new SyncDigests() } : {}) });
      expect(Buffer.concat(parts).equals(good), `head ${head}, sync ${sync}`).toBe(true);
      expect(result.format).toBe('estargz');
      expect(result.inputBytes).toBe(blob.length);
      expect(result.verified!.chunkDigestsChecked).toBe(result.verified!.chunks);
    }
  });
});
