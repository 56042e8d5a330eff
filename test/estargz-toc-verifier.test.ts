/**
 * The resumable TOC check (verify-toc.ts TocVerifier): the unpack checks walked entries while the
 * layer still streams, in slices of whatever has completed, then finishes at the end. Sliced or
 * not, it must accept exactly what a single pass accepts and fail with the same first message.
 * Real blobs from our builder, walked as the unpack walks them (TarWalker over the decoded
 * members), with the TOC then corrupted one field at a time.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seededContent, tarOfFiles } from './support/estargz-blob.ts';
import { buildEstargzBuffer } from '../processors/estargz/build-buffer.ts';
import { SyncDigests } from '../processors/estargz/digests.ts';
import { GzipMemberDecoder } from '../processors/estargz/gzip-members.ts';
import { TarWalker, type WalkedEntry } from '../processors/estargz/tar-walker.ts';
import { parseToc, type Toc, type TocEntry } from '../processors/estargz/toc.ts';
import { TocVerifier, verifyToc, VerifyError } from '../processors/estargz/verify-toc.ts';

interface Walked {
  toc: Toc;
  data: WalkedEntry[];
  memberStarts: ReadonlyMap<number, number>;
}

/** Decodes and walks a blob as the unpack does; the data entries are all but the TOC entry. */
function walk(blob: Buffer): Walked {
  const walker = new TarWalker(new SyncDigests());
  const decoder = new GzipMemberDecoder({
    memberStart: (offset) => walker.memberBegins(offset),
    data: (chunk) => walker.data(chunk),
    memberEnd() {},
  });
  decoder.push(blob);
  decoder.end();
  walker.finish();
  expect(walker.problem).toBeUndefined();
  expect(walker.toc).toBeDefined();
  return { toc: parseToc(walker.toc!.content), data: walker.entries.slice(0, -1), memberStarts: walker.memberStarts };
}

/** A single pass's outcome: the summary, or the failure's message. */
function once(toc: Toc, w: Walked): { summary?: unknown; error?: string } {
  try {
    return { summary: verifyToc(toc, w.data, w.memberStarts) };
  } catch (err) {
    expect(err).toBeInstanceOf(VerifyError);
    return { error: (err as Error).message };
  }
}

/** The same check advanced to each bound in turn (as entries complete), then finished. */
function sliced(toc: Toc, w: Walked, bounds: number[]): { summary?: unknown; error?: string } {
  const verifier = new TocVerifier(toc, w.memberStarts);
  try {
    for (const upTo of bounds) {
      verifier.advance(w.data, upTo);
      expect(verifier.position).toBeLessThanOrEqual(upTo);
    }
    return { summary: verifier.finish(w.data) };
  } catch (err) {
    expect(err).toBeInstanceOf(VerifyError);
    const message = (err as Error).message;
    // A failure stays: the verifier refuses to go on with the same error.
    expect(() => verifier.finish(w.data)).toThrow(message);
    return { error: message };
  }
}

type Corruption = (entries: TocEntry[], pick: number) => void;

const corruptions: Record<string, Corruption> = {
  digest: (e, k) => {
    const files = e.filter((x) => x.type === 'reg' && (x.size ?? 0) > 0);
    const f = files[k % files.length];
    if (f) f.digest = `sha256:${'0'.repeat(64)}`;
  },
  chunkDigest: (e, k) => {
    const chunks = e.filter((x) => x.chunkDigest !== undefined);
    const c = chunks[k % chunks.length];
    if (c) c.chunkDigest = `sha256:${'1'.repeat(64)}`;
  },
  size: (e, k) => {
    const files = e.filter((x) => x.type === 'reg');
    const f = files[k % files.length];
    if (f) f.size = (f.size ?? 0) + 1;
  },
  name: (e, k) => {
    const named = e.filter((y) => y.type !== 'chunk');
    const x = named[k % named.length];
    if (x) x.name = `${x.name}x`;
  },
  offset: (e, k) => {
    const withOffset = e.filter((x) => x.offset !== undefined);
    const x = withOffset[k % withOffset.length];
    if (x) x.offset = x.offset! + 1;
  },
  dropEntry: (e, k) => {
    e.splice(k % e.length, 1);
  },
  extraEntry: (e) => {
    e.push({ name: 'zz-not-in-the-tar', type: 'dir' });
  },
};

describe('TocVerifier (resumable TOC check)', () => {
  it('sliced as entries complete, it accepts and refuses exactly as a single pass, with the same first message', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.stringMatching(/^[a-z]{1,8}$/), fc.integer({ min: 0, max: 900 })), { minLength: 1, maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.option(fc.constantFrom(...Object.keys(corruptions)), { nil: undefined }),
        fc.nat(),
        async (files, rawBounds, corruption, pick) => {
          const unique = new Map(files.map(([name, size], i) => [`f/${name}`, seededContent(size, i)]));
          const tar = await tarOfFiles([...unique.entries()], []);
          // 256-byte chunks: files above that are split, so chunk entries and segments are exercised.
          const { blob } = await buildEstargzBuffer(tar, { chunkSize: 256, level: 1 });
          const w = walk(blob);
          const toc: Toc = structuredClone(w.toc);
          if (corruption) corruptions[corruption]!(toc.entries, pick);
          const bounds = rawBounds.map((b) => b % (w.data.length + 1)).sort((a, b) => a - b);
          const single = once(toc, w);
          // Every corruption is one a single pass catches; none is needed for a clean TOC.
          expect(single.error === undefined).toBe(corruption === undefined);
          expect(sliced(toc, w, bounds)).toEqual(single);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('advance checks no entry at or past its bound, and finish reports what the stream lacks', async () => {
    const tar = await tarOfFiles([['a', seededContent(600, 1)], ['b', seededContent(10, 2)], ['c', seededContent(0, 3)]], []);
    const { blob } = await buildEstargzBuffer(tar, { chunkSize: 256, level: 1 });
    const w = walk(blob);
    const verifier = new TocVerifier(w.toc, w.memberStarts);
    verifier.advance(w.data, 2);
    expect(verifier.position).toBe(2);
    // The walked entries end early (the layer was cut): the next TOC entry has no tar entry.
    expect(() => verifier.finish(w.data.slice(0, 3))).toThrow(/the tar stream has no entry for it \(only 3 entries before the TOC\)/);
    const whole = new TocVerifier(w.toc, w.memberStarts).finish(w.data);
    expect(whole.files).toBe(4);
    expect(whole.chunkDigestsChecked).toBe(whole.chunks);
  });
});
