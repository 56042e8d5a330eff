/**
 * The tar walker's digests (tar-walker.ts), however the decoded stream is cut: a segment that
 * arrives whole in one data() call is digested in one call (Digests.digestOf), one that arrives in
 * pieces through a Hash, and a file of several segments through a whole-file hash forked from its
 * first. Whatever the cuts, every file's digest and every segment's digest must be the sha256 of
 * exactly those bytes of the file, on the calling thread and through the hashing worker alike.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seededContent, tarOfFiles } from './support/estargz-blob.ts';
import { buildEstargzBuffer } from '../processors/estargz/build-buffer.ts';
import { type Digests, SyncDigests, WorkerDigests } from '../processors/estargz/digests.ts';
import { GzipMemberDecoder } from '../processors/estargz/gzip-members.ts';
import { TarWalker } from '../processors/estargz/tar-walker.ts';

function sha256(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Decodes `blob` into a walker, handing it each decoded piece cut further at the given sizes (cycled). */
async function walkCut(blob: Buffer, cuts: readonly number[], digests: Digests): Promise<TarWalker> {
  const walker = new TarWalker(digests);
  let k = 0;
  const decoder = new GzipMemberDecoder({
    memberStart: (offset) => walker.memberBegins(offset),
    data: (chunk) => {
      for (let at = 0; at < chunk.length; ) {
        const n = Math.max(1, cuts[k++ % cuts.length]!);
        walker.data(chunk.subarray(at, Math.min(chunk.length, at + n)));
        at += n;
      }
    },
    memberEnd() {},
  });
  decoder.push(blob);
  decoder.end();
  walker.finish();
  await digests.settle();
  return walker;
}

describe('tar walker digests', () => {
  it('every file and segment digest is the sha256 of its bytes, whatever the decoded stream is cut into, on either thread', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 9000 }), fc.nat()), { minLength: 1, maxLength: 5 }),
        fc.constantFrom(1024, 4096, 1 << 20),
        fc.array(fc.integer({ min: 1, max: 12_000 }), { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        async (specs, chunkSize, cuts, onWorker) => {
          const files = specs.map(([size, seed], i) => [`d/f${i}`, seededContent(size, seed)] as const);
          const tar = await tarOfFiles(files, []);
          const { blob } = await buildEstargzBuffer(tar, { chunkSize });
          const digests = onWorker ? new WorkerDigests() : new SyncDigests();
          let walker: TarWalker;
          try {
            walker = await walkCut(blob, cuts, digests);
          } finally {
            digests.close();
          }
          expect(walker.problem).toBeUndefined();
          for (const [name, content] of files) {
            const entry = walker.entries.find((e) => e.name.toString() === name);
            expect(entry, name).toBeDefined();
            if (content.length === 0) continue;
            expect(entry!.digest, name).toBe(sha256(content));
            // The segments tile the file, one per chunk member, each with its bytes' digest.
            let at = 0;
            for (const s of entry!.segments) {
              expect(s.fileOffset).toBe(at);
              expect(s.digest, `${name} at ${s.fileOffset}`).toBe(sha256(content.subarray(s.fileOffset, s.fileOffset + s.length)));
              at += s.length;
            }
            expect(at).toBe(content.length);
            expect(entry!.segments.length).toBe(Math.ceil(content.length / chunkSize));
          }
        },
      ),
      { numRuns: 60 },
    );
  }, 120_000);
});
