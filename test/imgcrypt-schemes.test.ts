/**
 * Decryption loads only the schemes a layer names (schemes/index.ts, wrappersForAnnotations);
 * what it returns must be the whole registry filtered to those annotations, in the same order,
 * for every combination — so unwrapping tries the same wrappers in the same order as with the
 * full list.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysAnnotation } from '../processors/imgcrypt/annotations.ts';
import { keyWrappers, wrappersForAnnotations } from '../processors/imgcrypt/schemes/index.ts';

let dir: string;
let saved: string | undefined;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'key-schemes-'));
  const config = path.join(dir, 'ocicrypt_keyprovider.conf');
  fs.writeFileSync(config, JSON.stringify({ 'key-providers': { alpha: { cmd: { path: '/bin/true', args: [] } }, beta: { grpc: 'localhost:1' } } }));
  saved = process.env.OCICRYPT_KEYPROVIDER_CONFIG;
  process.env.OCICRYPT_KEYPROVIDER_CONFIG = config;
});
afterAll(() => {
  if (saved === undefined) delete process.env.OCICRYPT_KEYPROVIDER_CONFIG;
  else process.env.OCICRYPT_KEYPROVIDER_CONFIG = saved;
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('key-wrapping scheme registry', () => {
  it('returns the registry’s wrappers for the annotations present, in registry order', async () => {
    const all = (await keyWrappers()).map((w) => w.annotationId);
    expect(all).toEqual(['jwe', 'pkcs7', 'pgp', 'provider.alpha', 'provider.beta']);
    const ids = [...all, 'provider.unconfigured', 'futurescheme'];
    await fc.assert(
      fc.asyncProperty(fc.subarray(ids), fc.boolean(), async (present, withPubopts) => {
        const annotations: Record<string, string> = {};
        for (const id of [...present].reverse()) annotations[keysAnnotation(id)] = 'AAAA';
        if (withPubopts) annotations['org.opencontainers.image.enc.pubopts'] = 'e30=';
        annotations['org.example.other'] = 'x';
        const loaded = (await wrappersForAnnotations(annotations)).map((w) => w.annotationId);
        expect(loaded).toEqual(all.filter((id) => present.includes(id)));
      }),
      { numRuns: 60 },
    );
  });

  it('loads nothing for a layer without keys annotations', async () => {
    expect(await wrappersForAnnotations({ 'org.opencontainers.image.enc.pubopts': 'e30=' })).toEqual([]);
  });
});
