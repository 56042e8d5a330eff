/**
 * zstd:chunked verification on unpack, both producers' layouts (../shared/reference/estargz.md
 * §7): stargz-snapshotter's (our `build --zstdchunked`, 40-byte GnUlInUx footer, eStargz TOC)
 * and containers/storage's (64-byte GNUlInUx footer with tar-split, or the older 40-byte one that
 * skopeo 1.9 writes; rolling chunks and "zeros" chunks). Properties on random trees (fast-check):
 * the output is exactly the decompressed layer and every chunk digest was compared; plain zstd
 * passes through; a changed chunk, a lying TOC, a damaged footer and every single-byte change of
 * a small layer that changes the decoded stream fail the unpack before its output is complete.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { BuildReport } from '../processors/estargz/build.ts';
import { buildEstargzBuffer } from '../processors/estargz/build-buffer.ts';
import { SyncDigests } from '../processors/estargz/digests.ts';
import { readStoredToc } from '../processors/estargz/run-inspect.ts';
import { parseToc, serializeToc } from '../processors/estargz/toc.ts';
import { unpackAnyLayer } from '../processors/estargz/unpack-any.ts';
import type { UnpackResult } from '../processors/estargz/unpack.ts';
import { encodeZstdChunkedFooter, parseZstdChunkedFooter, skippableFrame } from '../processors/estargz/zstd-chunked-footer.ts';
import { ZstdChunkedVerifier } from '../processors/estargz/zstd-chunked-verify.ts';
import { decodeStream } from '../processors/zstd/decode.ts';
import { makeCStorageZstdChunked } from './support/cstorage-zstd-chunked.ts';
import { expectedOut, packTar, readTar, treeArb } from './support/estargz-trees.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zstd-chunked-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function buildZstdChunked(tar: Buffer, chunkSize: number): Promise<{ blob: Buffer; report: BuildReport }> {
  return buildEstargzBuffer(tar, { chunkSize, compression: 'zstdchunked', level: 1 });
}

function pieced(blob: Buffer, pieces: readonly number[]): AsyncIterable<Buffer> {
  return (async function* () {
    let at = 0;
    let k = 0;
    while (at < blob.length) {
      const n = Math.max(1, pieces[k++ % pieces.length]!);
      yield blob.subarray(at, at + n);
      at += n;
    }
  })();
}

function collector(): { sink: Writable; out: () => Buffer } {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      parts.push(Buffer.from(chunk));
      done();
    },
  });
  return { sink, out: () => Buffer.concat(parts) };
}

/** The unpack as `outrigger estargz unpack` runs it (format sniffing, hashing worker). */
async function unpack(blob: Buffer, pieces: readonly number[] = [blob.length], tocDigest?: string): Promise<{ out: Buffer; result?: UnpackResult; error?: Error }> {
  const { sink, out } = collector();
  try {
    const result = await unpackAnyLayer(pieced(blob, pieces), sink, { tocDigest, chunkSize: 64 * 1024 });
    return { out: out(), result };
  } catch (err) {
    return { out: out(), error: err as Error };
  }
}

/** The zstd decoder with the verifier hashing on this thread: for the thousands of runs below. */
async function quickVerify(blob: Buffer): Promise<{ out: Buffer; error?: Error; format?: string }> {
  const { sink, out } = collector();
  const verifier = new ZstdChunkedVerifier({ digests: new SyncDigests() });
  try {
    await decodeStream(pieced(blob, [blob.length]), sink, { maxWindowSize: 1 << 27, chunkSize: 4096, formats: ['zstd'], passThrough: false, end: true, tarHoldBytes: 1 << 20, observer: verifier });
    return { out: out(), format: verifier.result.format };
  } catch (err) {
    return { out: out(), error: err as Error };
  } finally {
    verifier.close();
  }
}

/** Replaces the TOC frame of a 40-byte-footer zstd:chunked blob by `json` and re-seals it. */
function withTocJson(blob: Buffer, json: Buffer): Buffer {
  const footer = parseZstdChunkedFooter(blob.subarray(-40));
  const compressed = zlib.zstdCompressSync(json);
  const data = blob.subarray(0, footer.toc.offset - 8);
  const toc = { offset: data.length + 8, length: compressed.length, uncompressedLength: json.length };
  return Buffer.concat([data, skippableFrame(compressed), encodeZstdChunkedFooter({ size: 40, toc, manifestType: 1 })]);
}

function tocJsonOf(blob: Buffer): Buffer {
  const footer = parseZstdChunkedFooter(blob.subarray(-40));
  return zlib.zstdDecompressSync(blob.subarray(footer.toc.offset, footer.toc.offset + footer.toc.length));
}

const CHUNK_SIZES = [512, 1000, 4096];
const pieceSizes = fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 4 });

describe('zstd:chunked, stargz-snapshotter layout (build --zstdchunked)', () => {
  it('unpack output is the decompressed blob (its diff_id); every chunk digest compared; entries = input + landmark', async () => {
    await fc.assert(
      fc.asyncProperty(treeArb, fc.constantFrom(...CHUNK_SIZES), pieceSizes, async (entries, chunkSize, pieces) => {
        const tar = await packTar(entries);
        const { blob, report } = await buildZstdChunked(tar, chunkSize);
        const decompressed = zlib.zstdDecompressSync(blob);
        expect(report.diffId).toBe(sha256(decompressed));
        const { out, result, error } = await unpack(blob, pieces, report.tocDigest);
        expect(error).toBeUndefined();
        expect(out.equals(decompressed)).toBe(true);
        expect(result!.format).toBe('zstd:chunked');
        expect(result!.tocDigest).toBe(report.tocDigest);
        expect(result!.verified!.chunkDigestsChecked).toBe(result!.verified!.chunks);
        const files = entries.filter((e) => e.type === 'file' && (e.content?.length ?? 0) > 0).length;
        expect(result!.verified!.chunks).toBeGreaterThanOrEqual(files + 1); // + the landmark
        const outEntries = await readTar(out);
        expect(outEntries[0]).toMatchObject({ name: '.no.prefetch.landmark', size: 1 });
        expect(outEntries.length).toBe(entries.length + 1); // no TOC entry in the zstd variant
        outEntries.slice(1).forEach((o, i) => expect(o).toMatchObject(expectedOut(entries[i]!)));
      }),
      { numRuns: 25 },
    );
  });

  it('ls reads the TOC through the footer; the manifest checksum is accepted as the required digest too', async () => {
    const tar = await packTar([{ name: 'a', type: 'file', content: Buffer.alloc(3000, 1), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 }]);
    const { blob, report } = await buildZstdChunked(tar, 1000);
    const file = path.join(tmp, 'ls.zst');
    fs.writeFileSync(file, blob);
    const stored = readStoredToc(file);
    expect(stored.kind).toBe('zstd:chunked');
    expect(stored.digest).toBe(report.tocDigest);
    expect(stored.toc.entries.filter((e) => e.type === 'chunk').length).toBe(2);
    const checksum = report.annotations['io.containers.zstd-chunked.manifest-checksum']!;
    expect((await unpack(blob, [blob.length], checksum)).result?.format).toBe('zstd:chunked');
    const wrong = await unpack(blob, [blob.length], `sha256:${'0'.repeat(64)}`);
    expect(wrong.error?.message).toMatch(/TOC digest mismatch/);
    expect(wrong.out.length).toBeLessThan(zlib.zstdDecompressSync(blob).length);
  });

  it('a TOC that lies about a chunk digest, a file digest or an offset fails, naming the entry; the output stops short', async () => {
    const tar = await packTar([
      { name: 'd/', type: 'directory', mode: 0o755, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 },
      { name: 'd/big', type: 'file', content: Buffer.from('x'.repeat(2500) + 'y'.repeat(2500)), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 },
    ]);
    const { blob } = await buildZstdChunked(tar, 1000);
    const full = zlib.zstdDecompressSync(blob).length;
    const edits: Array<[string, (toc: ReturnType<typeof parseToc>) => void, RegExp]> = [
      ['chunk digest', (t) => { t.entries.find((e) => e.type === 'chunk')!.chunkDigest = sha256(Buffer.from('other')); }, /chunk digest mismatch/],
      ['file digest', (t) => { t.entries.find((e) => e.name === 'd/big')!.digest = sha256(Buffer.from('other')); }, /file digest mismatch/],
      ['offset', (t) => { const c = t.entries.filter((e) => e.type === 'chunk'); c[1]!.offset = c[0]!.offset; }, /offset|chunk digest/],
    ];
    for (const [what, edit, message] of edits) {
      const toc = parseToc(tocJsonOf(blob));
      edit(toc);
      const { out, error } = await unpack(withTocJson(blob, serializeToc(toc)));
      expect(error?.message, what).toMatch(message);
      expect(error?.message, what).toMatch(/d\/big/);
      expect(out.length, what).toBeLessThan(full);
    }
  });

  it('a damaged footer is an error, not a plain zstd layer', async () => {
    const tar = await packTar([{ name: 'f', type: 'file', content: Buffer.alloc(700, 3), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 }]);
    const { blob } = await buildZstdChunked(tar, 512);
    const bad = Buffer.from(blob);
    bad[bad.length - 1]! ^= 0x20; // GnUlInUx → GnUlInUX
    const { error } = await unpack(bad);
    expect(error?.message).toMatch(/zstd:chunked structure .* no intact footer/);
  });

  it('every single-byte change of a small layer that changes the decoded stream fails the unpack', async () => {
    const tar = await packTar([
      { name: 'a', type: 'file', content: Buffer.from('hello world\n'), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 },
      { name: 'b', type: 'file', content: Buffer.from('z'.repeat(700)), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 },
    ]);
    const { blob } = await buildZstdChunked(tar, 512);
    const good = zlib.zstdDecompressSync(blob);
    let failed = 0;
    for (let i = 0; i < blob.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const bad = Buffer.from(blob);
        bad[i]! ^= mask;
        const { out, error, format } = await quickVerify(bad);
        if (error) {
          expect(out.equals(good), `byte ${i} mask ${mask}`).toBe(false);
          failed++;
        } else {
          // Undetected only where the change cannot show: the same bytes, still verified.
          expect(out.equals(good), `byte ${i} mask ${mask}`).toBe(true);
          expect(format, `byte ${i} mask ${mask}`).toBe('zstd:chunked');
        }
      }
    }
    expect(failed).toBeGreaterThan(blob.length * 2 * 0.9);
  });
});

describe('zstd:chunked, containers/storage layout', () => {
  for (const footer of [64, 40] as const) {
    it(`${footer}-byte footer: output is the original tar (lossless); every chunk (zeros chunks too) compared`, async () => {
      await fc.assert(
        fc.asyncProperty(treeArb, fc.constantFrom(600, 2048, 65536), pieceSizes, fc.boolean(), async (entries, chunkSize, pieces, holes) => {
          const withHole = holes ? [...entries, { name: 'sparse-ish', type: 'file' as const, content: Buffer.concat([Buffer.from('head'), Buffer.alloc(5000), Buffer.from('tail')]), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 }] : entries;
          const tar = await packTar(withHole);
          const layer = makeCStorageZstdChunked(tar, { chunkSize, footer });
          expect(zlib.zstdDecompressSync(layer.blob).equals(tar)).toBe(true);
          const { out, result, error } = await unpack(layer.blob, pieces, layer.manifestChecksum);
          expect(error).toBeUndefined();
          expect(out.equals(tar)).toBe(true);
          expect(result!.format).toBe('zstd:chunked');
          expect(result!.tocDigest).toBe(layer.tocDigest);
          const v = result!.verified!;
          expect(v.chunks).toBe(layer.chunks);
          // Single-piece files carry no chunkDigest (their digest covers them); the rest are compared.
          const multi = layer.toc.entries.filter((e) => e.chunkDigest !== undefined).length;
          expect(v.chunkDigestsChecked).toBe(multi);
          if (holes) expect(layer.toc.entries.some((e) => e.chunkType === 'zeros')).toBe(true);
        }),
        { numRuns: 20 },
      );
    });
  }

  it('a chunk whose bytes differ from its digest fails (zstd checksums off, so only the TOC can tell)', async () => {
    const tar = await packTar([
      { name: 'x', type: 'file', content: Buffer.from('abc'.repeat(1000)), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 },
      { name: 'y', type: 'file', content: Buffer.from('def'.repeat(1000)), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 },
    ]);
    const clean = makeCStorageZstdChunked(tar, { chunkSize: 1000, footer: 64, checksum: false });
    for (let k = 0; k < clean.chunks; k++) {
      const layer = makeCStorageZstdChunked(tar, { chunkSize: 1000, footer: 64, checksum: false, corruptChunk: k });
      const { out, error } = await unpack(layer.blob);
      expect(error?.message, `chunk ${k}`).toMatch(/digest mismatch/);
      expect(out.length, `chunk ${k}`).toBeLessThan(tar.length);
    }
  });

  it("a tar-split frame that does not match the TOC's tarSplitDigest fails", async () => {
    const tar = await packTar([{ name: 'x', type: 'file', content: Buffer.from('abc'), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 }]);
    const layer = makeCStorageZstdChunked(tar, { chunkSize: 1000, footer: 64 });
    const footer = parseZstdChunkedFooter(layer.blob.subarray(-64));
    const bad = Buffer.from(layer.blob);
    bad[footer.tarSplit!.offset + footer.tarSplit!.length - 1]! ^= 1;
    expect((await unpack(bad)).error?.message).toMatch(/tar-split digest mismatch/);
  });
});

describe('plain zstd through the same path', () => {
  it('one frame or many: decoded unchanged, not verified; a required TOC digest fails it', async () => {
    await fc.assert(
      fc.asyncProperty(treeArb, fc.integer({ min: 1, max: 5 }), pieceSizes, async (entries, frames, pieces) => {
        const tar = await packTar(entries);
        const step = Math.ceil(tar.length / frames);
        const zst = Buffer.concat(Array.from({ length: frames }, (_, k) => zlib.zstdCompressSync(tar.subarray(k * step, (k + 1) * step))));
        const { out, result, error } = await unpack(zst, pieces);
        expect(error).toBeUndefined();
        expect(out.equals(tar)).toBe(true);
        expect(result!.format).toBe('zstd');
      }),
      { numRuns: 20 },
    );
    const tar = await packTar([{ name: 'x', type: 'file', content: Buffer.from('abc'), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 }]);
    const { error } = await unpack(zlib.zstdCompressSync(tar), [100], `sha256:${'1'.repeat(64)}`);
    expect(error?.message).toMatch(/not zstd:chunked/);
  });
});

const haveSkopeo = spawnSync('skopeo', ['--version']).status === 0;

describe.runIf(haveSkopeo)("interop: skopeo copy --dest-compress-format zstd:chunked (Debian's skopeo, containers/storage's writer)", () => {
  it("verifies skopeo's zstd:chunked layer against its manifest checksum, and catches a lie in its TOC", async () => {
    // Incompressible bytes, so containers/storage's rolling checksum cuts several chunks.
    const big = Buffer.concat(Array.from({ length: 4000 }, (_, i) => createHash('sha512').update(`seed ${i}`).digest()));
    const tar = await packTar([
      { name: 'etc/', type: 'directory', mode: 0o755, uid: 0, gid: 0, uname: '', gname: '', mtime: 1_700_000_000 },
      { name: 'etc/small', type: 'file', content: Buffer.from('small\n'), mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1_700_000_000 },
      { name: 'etc/big', type: 'file', content: big, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1_700_000_000 },
    ]);
    // A minimal OCI layout holding one tar+gzip layer, copied by skopeo with zstd:chunked.
    const src = path.join(tmp, 'skopeo-src');
    const dst = path.join(tmp, 'skopeo-dst');
    const blobs = path.join(src, 'blobs/sha256');
    fs.mkdirSync(blobs, { recursive: true });
    const put = (data: Buffer): { digest: string; size: number } => {
      const digest = sha256(data);
      fs.writeFileSync(path.join(blobs, digest.slice(7)), data);
      return { digest, size: data.length };
    };
    const layer = put(zlib.gzipSync(tar));
    const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(tar)] } })));
    const manifest = put(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    })));
    fs.writeFileSync(path.join(src, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    fs.writeFileSync(path.join(src, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'x' } }] }));
    execFileSync('skopeo', ['copy', '--quiet', '--dest-compress-format', 'zstd:chunked', `oci:${src}:x`, `oci:${dst}:x`]);
    const index = JSON.parse(fs.readFileSync(path.join(dst, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const read = (digest: string): Buffer => fs.readFileSync(path.join(dst, 'blobs/sha256', digest.slice(7)));
    const m = JSON.parse(read(index.manifests[0]!.digest).toString()) as { layers: Array<{ digest: string; mediaType: string; annotations?: Record<string, string> }> };
    const out = m.layers[0]!;
    expect(out.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    // skopeo 1.9 (containers/storage of its time): the old annotation name and the 40-byte footer.
    const checksum = out.annotations?.['io.github.containers.zstd-chunked.manifest-checksum'] ?? out.annotations?.['io.containers.zstd-chunked.manifest-checksum'];
    expect(checksum).toMatch(/^sha256:/);
    const blob = read(out.digest);
    const { out: tarOut, result, error } = await unpack(blob, [4096], checksum);
    expect(error).toBeUndefined();
    expect(tarOut.equals(zlib.zstdDecompressSync(blob))).toBe(true);
    expect(result!.format).toBe('zstd:chunked');
    expect(result!.verified!.chunks).toBeGreaterThan(2);
    expect(result!.verified!.chunkDigestsChecked).toBeGreaterThan(1);
    // A lie about one chunk of etc/big, re-sealed as a valid layer: only the verification sees it.
    const footerSize = blob.subarray(-8).toString('latin1') === 'GNUlInUx' ? 64 : 40;
    expect(footerSize).toBe(40);
    const toc = JSON.parse(tocJsonOf(blob).toString()) as { entries: Array<Record<string, unknown>> };
    const chunk = toc.entries.find((e) => e.type === 'chunk')!;
    chunk.chunkDigest = sha256(Buffer.from('not it'));
    const lie = await unpack(withTocJson(blob, Buffer.from(JSON.stringify(toc))));
    expect(lie.error?.message).toMatch(/etc\/big.*chunk digest mismatch/);
  });
});
