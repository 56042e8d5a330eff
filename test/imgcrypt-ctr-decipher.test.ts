/**
 * AES-256-CTR into caller-owned buffers (ctr-decipher.ts): OpenSSL through node:ffi must give
 * exactly what Node's Decipher gives for any key, counter (carries across the 64-bit halves and
 * the 128-bit wrap included) and chunking, and refuse an output buffer too small for the input.
 */
import crypto from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCtrDecipher } from '../processors/imgcrypt/ctr-decipher.ts';

const counters = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  // About to carry out of the low 64 bits, or to wrap the whole 128-bit counter.
  fc.constantFrom('0000000000000000fffffffffffffffd', 'fffffffffffffffffffffffffffffffe', '00000000000000000000000000000000').map((h) => new Uint8Array(Buffer.from(h, 'hex'))),
);

describe('CTR decipher', () => {
  it('uses OpenSSL through node:ffi on this Node', () => {
    const d = createCtrDecipher(Buffer.alloc(32), Buffer.alloc(16));
    expect(d.kind).toBe('openssl-ffi');
    d.close();
  });

  it('decrypts exactly as Node’s Decipher for any key, counter and chunking, into the buffer given', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        counters,
        fc.uint8Array({ minLength: 0, maxLength: 3000 }),
        fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 5 }),
        (key, iv, data, cuts) => {
          const k = Buffer.from(key);
          const n = Buffer.from(iv);
          const input = Buffer.from(data);
          const expected = crypto.createDecipheriv('aes-256-ctr', k, n).update(input);
          for (const forceNode of [false, true]) {
            const d = createCtrDecipher(k, n, { forceNode });
            const parts: Buffer[] = [];
            let at = 0;
            for (const cut of [...cuts.filter((c) => c < input.length), input.length].sort((a, b) => a - b)) {
              const piece = input.subarray(at, cut);
              const into = Buffer.alloc(piece.length + 5, 0xee);
              const out = d.update(piece, into);
              if (d.kind === 'openssl-ffi') {
                expect(out.buffer).toBe(into.buffer);
                // Nothing written past the input's length.
                expect(into.subarray(piece.length).every((b) => b === 0xee)).toBe(true);
              }
              parts.push(Buffer.from(out));
              at = cut;
            }
            d.close();
            expect(Buffer.concat(parts).equals(expected)).toBe(true);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reads from and writes to shared memory (the reader’s chunks live in SharedArrayBuffers)', () => {
    const key = crypto.randomBytes(32);
    const iv = crypto.randomBytes(16);
    const input = Buffer.from(new SharedArrayBuffer(4096));
    crypto.randomFillSync(input);
    const into = Buffer.from(new SharedArrayBuffer(4096));
    const d = createCtrDecipher(key, iv);
    expect(d.update(input, into).equals(crypto.createDecipheriv('aes-256-ctr', key, iv).update(input))).toBe(true);
    d.close();
  });

  it('refuses an output buffer shorter than the input, and use after close', () => {
    const d = createCtrDecipher(crypto.randomBytes(32), crypto.randomBytes(16));
    expect(() => d.update(Buffer.alloc(100), Buffer.alloc(99))).toThrow(RangeError);
    d.close();
    d.close();
    expect(() => d.update(Buffer.alloc(10), Buffer.alloc(10))).toThrow(/after close/);
  });
});
