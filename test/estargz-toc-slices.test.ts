/**
 * The TOC parsed a slice of entries at a time (toc.ts parseTocInSlices, what the unpack's TOC
 * read-ahead uses so that a large TOC does not hold its thread for one long JSON.parse) must give
 * exactly parseToc's result for any TOC our writer or upstream's lays out, at any slice size,
 * and leave any other layout and any broken TOC to parseToc (same result, same error).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseToc, parseTocInSlices, serializeToc, type Toc, type TocEntry } from '../processors/estargz/toc.ts';

const name = fc.oneof(
  fc.stringMatching(/^[a-z0-9_-]{1,12}(\.[a-z]{1,3})?(\/[a-z0-9_-]{1,12}){0,3}$/),
  // Names JSON must escape: quotes, backslashes, newlines, tabs, the characters Go escapes, non-ASCII.
  fc.array(fc.constantFrom('a', '"', '\\', '\n', '\t', '<', '&', '\u2028', 'é', '日', '}', ',', '{'), { minLength: 1, maxLength: 12 }).map((c) => `d/${c.join('')}`),
);
const digest = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => `sha256:${Buffer.from(b).toString('hex')}`);

const entry: fc.Arbitrary<TocEntry> = fc.oneof(
  fc.record({ name, type: fc.constant('dir' as const), mode: fc.nat(0o7777), modtime: fc.constant('2024-01-02T03:04:05Z') }),
  fc.record({ name, type: fc.constant('symlink' as const), linkName: name }),
  fc.record(
    {
      name,
      type: fc.constant('reg' as const),
      size: fc.nat(1 << 30),
      offset: fc.nat(1 << 30),
      digest,
      chunkDigest: digest,
      xattrs: fc.dictionary(fc.constantFrom('user.a', 'security.capability', 'trusted.x'), fc.base64String({ maxLength: 20 })),
    },
    { requiredKeys: ['name', 'type', 'size', 'offset', 'digest'] },
  ),
  fc.record({ name, type: fc.constant('chunk' as const), offset: fc.nat(1 << 30), chunkOffset: fc.nat(1 << 30), chunkSize: fc.nat(1 << 22), chunkDigest: digest }),
);

const pause = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function outcome(run: () => Toc | Promise<Toc>): Promise<{ toc?: Toc; error?: string }> {
  try {
    return { toc: await run() };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

describe('parseTocInSlices', () => {
  it('equals parseToc for any indented TOC at any slice size, and for compact or broken ones', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(entry, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 4000 }),
        fc.constantFrom('indented', 'compact', 'trailing-newline', 'broken'),
        fc.nat(),
        async (entries, sliceBytes, layout, at) => {
          const toc: Toc = { version: 1, entries };
          let json = serializeToc(toc);
          if (layout === 'compact') json = Buffer.from(JSON.stringify(JSON.parse(json.toString('utf8'))));
          if (layout === 'trailing-newline') json = Buffer.concat([json, Buffer.from('\n')]);
          if (layout === 'broken') {
            json = Buffer.from(json);
            json[at % json.length] = 0x7b; // '{' somewhere
          }
          const whole = await outcome(() => parseToc(json));
          const sliced = await outcome(() => parseTocInSlices(json, pause, sliceBytes));
          expect(sliced).toEqual(whole);
          if (layout !== 'broken') expect(whole.toc?.entries.length).toBe(entries.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('pauses between slices of a large TOC, and only there', async () => {
    const entries = Array.from({ length: 3000 }, (_, i): TocEntry => ({ name: `f/${i}`, type: 'reg', size: i, offset: i * 10, digest: `sha256:${'ab'.repeat(32)}` }));
    const json = serializeToc({ version: 1, entries });
    let pauses = 0;
    const toc = await parseTocInSlices(json, async () => {
      pauses++;
    }, 64 * 1024);
    expect(toc).toEqual(parseToc(json));
    // Every slice but the last runs to the first entry break past 64 KiB (entries here are ~150 bytes).
    expect(json.length).toBeGreaterThan(4 * 64 * 1024);
    expect(pauses).toBeGreaterThanOrEqual(Math.floor(json.length / (65 * 1024)) - 1);
    expect(pauses).toBeLessThanOrEqual(Math.floor(json.length / (64 * 1024)));
  });
});
