/**
 * eStargz builder and verifying unpack, on random file trees (fast-check): the unpack output is
 * exactly gunzip(blob) and its diff_id; the tar (read back with tar-stream, an independent
 * reader) holds the input's entries plus the landmark and the TOC; the TOC describes them with
 * upstream's encodings; output is reproducible; plain gzip passes through unchanged.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import fc from 'fast-check';
import tarStream from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import type { BuildOptions, BuildReport } from '../processors/estargz/build.ts';
import { buildEstargzBuffer } from '../processors/estargz/build-buffer.ts';
import { encodeFooter, encodeLegacyFooter, parseFooter } from '../processors/estargz/footer.ts';
import { readStoredToc } from '../processors/estargz/run-inspect.ts';
import { parseToc, type TocEntry } from '../processors/estargz/toc.ts';
import { unpackLayer, type UnpackResult } from '../processors/estargz/unpack.ts';
import { expectedOut, packTar, readTar, treeArb } from './support/estargz-trees.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'estargz-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function build(tar: Buffer, opts: BuildOptions): Promise<{ blob: Buffer; report: BuildReport }> {
  return buildEstargzBuffer(tar, opts);
}

/** Feeds `blob` in pieces of the given sizes (cycled) so member and header boundaries fall anywhere. */
async function unpack(blob: Buffer, pieces: readonly number[] = [blob.length], tocDigest?: string): Promise<{ out: Buffer; result: UnpackResult }> {
  async function* source(): AsyncGenerator<Buffer> {
    let at = 0;
    let k = 0;
    while (at < blob.length) {
      const n = Math.max(1, pieces[k++ % pieces.length]!);
      yield blob.subarray(at, at + n);
      at += n;
    }
  }
  const parts: Buffer[] = [];
  const result = await unpackLayer(source(), (c) => {
    parts.push(Buffer.from(c));
  }, { tocDigest });
  return { out: Buffer.concat(parts), result };
}

const CHUNK_SIZES = [512, 1000, 4096];

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('estargz build → unpack (property)', () => {
  it('unpack output equals gunzip(blob) and the diff_id; entries are the input plus landmark and TOC; TOC matches', async () => {
    await fc.assert(
      fc.asyncProperty(treeArb, fc.constantFrom(...CHUNK_SIZES), fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 4 }), async (entries, chunkSize, pieces) => {
        const tar = await packTar(entries);
        const { blob, report } = await build(tar, { chunkSize, level: 1 });
        const gunzipped = zlib.gunzipSync(blob);
        expect(report.diffId).toBe(sha256(gunzipped));
        expect(report.uncompressedSize).toBe(gunzipped.length);
        expect(report.blobDigest).toBe(sha256(blob));

        const { out, result } = await unpack(blob, pieces, report.tocDigest);
        expect(out.equals(gunzipped)).toBe(true);
        expect(result.format).toBe('estargz');
        expect(result.tocDigest).toBe(report.tocDigest);
        expect(result.verified!.chunkDigestsChecked).toBe(result.verified!.chunks);

        const outEntries = await readTar(out);
        expect(outEntries[0]).toMatchObject({ name: '.no.prefetch.landmark', type: 'file', size: 1, sha: createHash('sha256').update(Buffer.from([0x0f])).digest('hex') });
        expect(outEntries.at(-1)).toMatchObject({ name: 'stargz.index.json', type: 'file', mode: 0 });
        const middle = outEntries.slice(1, -1);
        expect(middle.length).toBe(entries.length);
        middle.forEach((o, i) => expect(o).toMatchObject(expectedOut(entries[i]!)));

        // The TOC: one entry per tar entry plus chunk entries; upstream's encodings.
        const toc = parseToc(Buffer.from(await tocContent(out)));
        const files = toc.entries.filter((e) => e.type !== 'chunk');
        expect(files.map((e) => e.name)).toEqual(['.no.prefetch.landmark', ...entries.map((e) => e.name)]);
        const seenUser = new Map<number, string>();
        files.slice(1).forEach((t: TocEntry, i) => {
          const e = entries[i]!;
          expect(t.mode ?? 0).toBe(e.mode);
          expect(t.uid ?? 0).toBe(e.uid);
          expect(t.modtime).toBe(e.mtime === 0 ? undefined : new Date(e.mtime * 1000).toISOString().replace('.000Z', 'Z'));
          const expectUser = (seenUser.get(e.uid) ?? '') !== e.uname ? e.uname || undefined : undefined;
          expect(t.userName).toBe(expectUser);
          if ((seenUser.get(e.uid) ?? '') !== e.uname) seenUser.set(e.uid, e.uname);
          if (e.xattrs) {
            expect(t.xattrs).toEqual(Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [k, Buffer.from(v).toString('base64')])));
          }
          if (e.type === 'file') {
            expect(t.digest).toBe(sha256(e.content!));
            const size = e.content!.length;
            const chunks = toc.entries.filter((c) => c.type === 'chunk' && c.name === e.name);
            expect(chunks.length).toBe(size === 0 ? 0 : Math.ceil(size / chunkSize) - 1);
          }
        });
        // Blob-level TOC read (footer → TOC member) agrees.
        const blobFile = path.join(tmp, `blob-${process.pid}.esgz`);
        fs.writeFileSync(blobFile, blob);
        expect(readStoredToc(blobFile).digest).toBe(report.tocDigest);
      }),
      { numRuns: 40 },
    );
  });

  it('is reproducible: same input and flags give the same bytes', async () => {
    await fc.assert(
      fc.asyncProperty(treeArb, async (entries) => {
        const tar = await packTar(entries);
        const a = await build(tar, { chunkSize: 1000, level: 6, parallelism: 1 });
        const b = await build(tar, { chunkSize: 1000, level: 6, parallelism: 8 });
        expect(a.blob.equals(b.blob)).toBe(true);
        expect(a.report).toEqual(b.report);
      }),
      { numRuns: 10 },
    );
  });

  it('passes plain gzip (single and multi-member) through as gunzip would', async () => {
    await fc.assert(
      fc.asyncProperty(treeArb, fc.integer({ min: 1, max: 5 }), fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 3 }), async (entries, members, pieces) => {
        const tar = await packTar(entries);
        const step = Math.ceil(tar.length / members);
        const gz = Buffer.concat(Array.from({ length: members }, (_, k) => zlib.gzipSync(tar.subarray(k * step, (k + 1) * step))));
        const { out, result } = await unpack(gz, pieces);
        expect(out.equals(tar)).toBe(true);
        expect(result.format).toBe('gzip');
      }),
      { numRuns: 30 },
    );
  });
});

async function tocContent(tar: Buffer): Promise<Buffer> {
  const extract = tarStream.extract();
  let toc: Buffer | undefined;
  const done = (async () => {
    for await (const entry of extract) {
      const parts: Buffer[] = [];
      for await (const c of entry) parts.push(c as Buffer);
      if (entry.header.name === 'stargz.index.json') toc = Buffer.concat(parts);
    }
  })();
  extract.end(tar);
  await done;
  if (!toc) throw new Error('no TOC entry');
  return toc;
}

describe('estargz layout details', () => {
  it('footer bytes match the reference (eStargz 51 bytes, legacy 47 bytes)', () => {
    expect(encodeFooter(0x2abd).toString('hex')).toBe(
      '1f8b08040000000000ff1a00534716003030303030303030303030303261626453544152475a010000ffff0000000000000000',
    );
    expect(encodeLegacyFooter(0x2abd).toString('hex')).toBe(
      '1f8b08040000000000ff16003030303030303030303030303261626453544152475a010000ffff0000000000000000',
    );
    expect(parseFooter(encodeFooter(0x2abd))).toEqual({ kind: 'estargz', tocOffset: 0x2abd, size: 51 });
    expect(parseFooter(encodeLegacyFooter(77))).toEqual({ kind: 'legacy', tocOffset: 77, size: 47 });
    // The footer is an empty gzip member: gunzip accepts it and yields nothing.
    expect(zlib.gunzipSync(encodeFooter(5)).length).toBe(0);
  });

  it('a TOC member holds exactly stargz.index.json (mode 0, no trailing newline) and the end marker; members start each payload', async () => {
    const tar = await packTar([
      { name: 'bin/', type: 'directory', mode: 0o755, uid: 0, gid: 0, uname: '', gname: '', mtime: 1_700_000_000 },
      { name: 'bin/hello', type: 'file', content: Buffer.from('hello\n'), mode: 0o755, uid: 0, gid: 0, uname: '', gname: '', mtime: 1_700_000_000 },
      { name: 'data/big.bin', type: 'file', content: Buffer.alloc(10000, 7), mode: 0o644, uid: 1000, gid: 1000, uname: 'u', gname: 'g', mtime: 1_700_000_000 },
    ]);
    const { blob, report } = await build(tar, { chunkSize: 4096 });
    const footer = parseFooter(blob.subarray(-51))!;
    expect(footer.tocOffset).toBe(report.tocOffset);
    const tocTar = zlib.gunzipSync(blob.subarray(footer.tocOffset, blob.length - 51));
    expect(tocTar.subarray(0, 17).toString()).toBe('stargz.index.json');
    const json = tocTar.subarray(512, 512 + parseInt(tocTar.toString('latin1', 124, 135), 8));
    expect(json.at(-1)).toBe(0x7d); // '}' : no trailing newline
    expect(json.toString()).toContain('\n\t"entries": [\n\t\t{\n\t\t\t"name": ".no.prefetch.landmark"');
    expect(tocTar.length % 512).toBe(0);
    expect(tocTar.subarray(-1024).every((b) => b === 0)).toBe(true);
    const toc = parseToc(json);
    const big = toc.entries.filter((e) => e.name === 'data/big.bin');
    expect(big.map((e) => [e.type, e.chunkOffset, e.chunkSize])).toEqual([
      ['reg', undefined, 4096], ['chunk', 4096, 4096], ['chunk', 8192, undefined],
    ]);
    expect(big[0]).toMatchObject({ size: 10000, mode: 0o644, uid: 1000, gid: 1000, userName: 'u', groupName: 'g', modtime: '2023-11-14T22:13:20Z' });
    // Every payload offset is a gzip member start that decompresses to exactly that chunk first.
    for (const e of toc.entries.filter((x) => x.offset !== undefined)) {
      const member = zlib.gunzipSync(blob.subarray(e.offset!, footer.tocOffset));
      const expected = e.name === '.no.prefetch.landmark' ? Buffer.from([0x0f]) : e.name === 'bin/hello' ? Buffer.from('hello\n') : Buffer.alloc(10000 - (e.chunkOffset ?? 0), 7);
      expect(member.subarray(0, expected.length).equals(expected)).toBe(true);
    }
  });

  it('--prioritized-files order: parents, hardlink targets, the file, then .prefetch.landmark, then the rest', async () => {
    const common = { mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 };
    const tar = await packTar([
      { ...common, name: 'bin/', type: 'directory' },
      { ...common, name: 'bin/hello', type: 'file', content: Buffer.from('x') },
      { ...common, name: 'bin/hello2', type: 'link', linkname: 'bin/hello' },
      { ...common, name: 'data/', type: 'directory' },
      { ...common, name: 'data/x.txt', type: 'file', content: Buffer.from('y') },
      { ...common, name: 'z', type: 'file', content: Buffer.from('z') },
      { ...common, name: '.no.prefetch.landmark', type: 'file', content: Buffer.from('old') },
    ]);
    const { blob } = await build(tar, { prioritizedFiles: ['data/x.txt', '/bin/hello2'] });
    const { out } = await unpack(blob);
    const names = (await readTar(out)).map((e) => e.name);
    expect(names).toEqual(['data/', 'data/x.txt', 'bin/', 'bin/hello', 'bin/hello2', '.prefetch.landmark', 'z', 'stargz.index.json']);
    await expect(build(tar, { prioritizedFiles: ['nope'] })).rejects.toThrow(/prioritized file "nope" is not in the input tar/);
  });

  it('a later duplicate replaces the earlier one at the later position; input TOC files are dropped', async () => {
    const common = { mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1, type: 'file' as const };
    const tar = await packTar([
      { ...common, name: 'a', content: Buffer.from('1') },
      { ...common, name: 'b', content: Buffer.from('2') },
      { ...common, name: './a', content: Buffer.from('3') },
      { ...common, name: 'stargz.index.json', content: Buffer.from('{}') },
    ]);
    const { out } = await unpack((await build(tar, {})).blob);
    const entries = await readTar(out);
    expect(entries.map((e) => e.name)).toEqual(['.no.prefetch.landmark', 'b', './a', 'stargz.index.json']);
    expect(entries[2]!.sha).toBe(createHash('sha256').update('3').digest('hex'));
  });

  it("zstd:chunked (stargz-snapshotter's): zstd frame per chunk, TOC in a skippable frame, 40-byte footer, no TOC entry", async () => {
    const tar = await packTar([
      { name: 'bin/', type: 'directory', mode: 0o755, uid: 0, gid: 0, uname: '', gname: '', mtime: 1_700_000_000 },
      { name: 'data/big.bin', type: 'file', content: Buffer.alloc(10000, 7), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1_700_000_000 },
    ]);
    const { blob, report } = await build(tar, { chunkSize: 4096, compression: 'zstdchunked' });
    expect(report.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    expect(report.level).toBe(3);
    // The decoded stream: landmark and entries only (no TOC entry, no end-of-archive marker).
    const decoded = zlib.zstdDecompressSync(blob);
    expect(report.diffId).toBe(sha256(decoded));
    expect(report.uncompressedSize).toBe(decoded.length);
    expect(decoded.length % 512).toBe(0);
    expect((await readTar(decoded)).map((e) => e.name)).toEqual(['.no.prefetch.landmark', 'bin/', 'data/big.bin']);
    // Footer: skippable frame (magic 0x184D2A50, 40 bytes) {TOC offset, length, uncompressed length, 1} + "GnUlInUx".
    const footer = blob.subarray(-48);
    expect(footer.subarray(0, 8).toString('hex')).toBe('502a4d1828000000');
    expect(footer.subarray(40).toString('latin1')).toBe('GnUlInUx');
    const field = (at: number) => Number(footer.readBigUInt64LE(at));
    const [offset, length, plain, kind] = [field(8), field(16), field(24), field(32)];
    expect(kind).toBe(1);
    expect(offset).toBe(report.tocOffset);
    expect(blob.subarray(offset - 8, offset - 4).toString('hex')).toBe('502a4d18');
    const compressedToc = blob.subarray(offset, offset + length);
    const json = zlib.zstdDecompressSync(compressedToc);
    expect(json.length).toBe(plain);
    expect(sha256(json)).toBe(report.tocDigest);
    expect(report.annotations).toMatchObject({
      'containerd.io/snapshot/stargz/toc.digest': report.tocDigest,
      'io.containers.estargz.uncompressed-size': String(decoded.length),
      'io.containers.zstd-chunked.manifest-checksum': sha256(compressedToc),
      'io.containers.zstd-chunked.manifest-position': `${offset}:${length}:${plain}:1`,
    });
    // Every payload offset is a zstd frame start whose content begins with that chunk.
    const toc = parseToc(json);
    for (const e of toc.entries.filter((x) => x.offset !== undefined)) {
      const rest = zlib.zstdDecompressSync(blob.subarray(e.offset!, offset - 8));
      const expected = e.name === '.no.prefetch.landmark' ? Buffer.from([0x0f]) : Buffer.alloc(10000 - (e.chunkOffset ?? 0), 7);
      expect(rest.subarray(0, expected.length).equals(expected)).toBe(true);
    }
  });

  it('rejects tar entries eStargz cannot describe', async () => {
    const pack = tarStream.pack();
    const chunks: Buffer[] = [];
    const done = (async () => {
      for await (const c of pack) chunks.push(c as Buffer);
    })();
    pack.entry({ name: 'c', type: 'contiguous-file', size: 1 }, Buffer.from('c'));
    pack.finalize();
    await done;
    await expect(build(Buffer.concat(chunks), {})).rejects.toThrow(/unsupported tar entry type '7'/);
  });
});
