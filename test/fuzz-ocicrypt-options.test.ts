/**
 * Fuzzing ocicrypt's layer options JSON (processors/imgcrypt/options-json.ts): the pubopts from
 * an image annotation and the private options unwrapped from a key annotation, both
 * attacker-controlled. Generated from the real keys with base64 values of the right and wrong
 * sizes, bad base64, arbitrary JSON, `__proto__`/`constructor` keys, and plain bytes.
 * Invariants: the only exceptions are the parsers' own errors naming the document; what parses
 * has a plain (or null) prototype and round-trips through our serializer unchanged; key material
 * derived from a pair has exactly the sizes AES-256-CTR/HMAC-SHA256 need.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  HMAC_BYTES,
  layerKeyMaterial,
  NONCE_BYTES,
  parsePrivateOptions,
  parsePublicOptions,
  serializePrivateOptions,
  serializePublicOptions,
  SYMMETRIC_KEY_BYTES,
} from '../processors/imgcrypt/options-json.ts';
import { assertFuzz, fuzzTestTimeout } from './support/fuzz.ts';

// ---- ocicrypt layer options ----

const b64 = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('base64'));
const fieldValue = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(b64(SYMMETRIC_KEY_BYTES), b64(NONCE_BYTES), b64(HMAC_BYTES), fc.nat({ max: 40 }).chain(b64)) },
  { weight: 1, arbitrary: fc.constantFrom('', '====', 'not base64!', 'YQ', 'YQ=', 'YQ==', 'YQ===', 'Y Q==', '-_-_', 'AES_256_CTR_HMAC_SHA256') },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);
const optionsKeys = fc.constantFrom('cipher', 'hmac', 'cipheroptions', 'symkey', 'digest', 'Cipher', 'SymKey', '__proto__', 'constructor', 'nonce');
const optionsObject = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .record({
        fields: fc.dictionary(optionsKeys, fieldValue, { maxKeys: 6 }),
        cipher: fc.option(fc.constantFrom('AES_256_CTR_HMAC_SHA256', 'AES_128_GCM', ''), { nil: undefined }),
        cipheroptions: fc.option(fc.dictionary(fc.constantFrom('nonce', 'iv', '__proto__', 'toString'), fieldValue, { maxKeys: 3 }), { nil: undefined }),
      })
      .map(({ fields, cipher, cipheroptions }) => {
        const o: Record<string, unknown> = { ...fields };
        if (cipher !== undefined) o.cipher = cipher;
        if (cipheroptions !== undefined) o.cipheroptions = cipheroptions;
        // JSON.stringify drops a __proto__ set through a dictionary; write it as text so it reaches the parser.
        return Buffer.from(JSON.stringify(o).replace(/^\{/, fields.__proto__ !== undefined ? '{"__proto__":{"nonce":"AAAA"},' : '{').replace(/,\}$/, '}'));
      }),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
);

function expectOwnError(err: unknown, what: RegExp): void {
  expect(err).toBeInstanceOf(Error);
  // The parser's own messages, not a TypeError from inside it.
  expect((err as Error).constructor).toBe(Error);
  expect((err as Error).message).toMatch(what);
}

/** Runs `parse`; a throw must be the parser's own error, anything else is returned. */
function parsed<T>(parse: () => T, what: RegExp): T | undefined {
  try {
    return parse();
  } catch (err) {
    expectOwnError(err, what);
    return undefined;
  }
}

function checkOptions(pubBytes: Buffer, privBytes: Buffer): void {
  const pub = parsed(() => parsePublicOptions(pubBytes), /public layer options/);
  if (pub !== undefined) {
    expect([Object.prototype, null], 'a "__proto__" key replaced the cipheroptions prototype').toContain(Object.getPrototypeOf(pub.cipherOptions));
    expect(parsePublicOptions(serializePublicOptions(pub))).toEqual(pub);
  }
  const priv = parsed(() => parsePrivateOptions(privBytes), /private layer options/);
  if (priv !== undefined) {
    expect([Object.prototype, null], 'a "__proto__" key replaced the cipheroptions prototype').toContain(Object.getPrototypeOf(priv.cipherOptions));
    expect(parsePrivateOptions(serializePrivateOptions(priv))).toEqual(priv);
  }
  if (pub === undefined || priv === undefined) return;
  const material = parsed(() => layerKeyMaterial(pub, priv), /cipher|key|nonce|HMAC/);
  if (material === undefined) return;
  expect(material.symKey.length).toBe(SYMMETRIC_KEY_BYTES);
  expect(material.nonce.length).toBe(NONCE_BYTES);
  expect(material.hmac.length).toBe(HMAC_BYTES);
}

describe('ocicrypt options fuzzing', () => {
  it('ocicrypt pubopts and private options: only their own errors, parsed options round-trip, key material has exact sizes', async () => {
    await assertFuzz('imgcrypt', 'layer options JSON (pubopts, private options)', [optionsObject, optionsObject], async (p, q) => checkOptions(p, q), {
      runs: 500,
      timeoutMs: 2_000,
    });
  }, fuzzTestTimeout(500, 100));
});
