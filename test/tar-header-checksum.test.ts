/**
 * Tar header checksums (src/tar/header.ts): a block is accepted exactly when its checksum field
 * holds the unsigned sum of its bytes with that field counted as spaces, whether the block sits
 * at a 4-byte-aligned offset (summed a word at a time) or not (a byte at a time).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBasicHeader, TarFormatError } from '../src/tar/header.ts';

/** A ustar header block with random bytes where they do not matter, and a correct checksum. */
function block(fill: Uint8Array, size: number): Buffer {
  const b = Buffer.from(fill);
  b.write('f\0', 0, 'latin1');
  b.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  b[156] = 0x30;
  b.write('ustar\x0000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

function accepts(view: Uint8Array): boolean {
  try {
    decodeBasicHeader(view, 0);
    return true;
  } catch (err) {
    expect(err).toBeInstanceOf(TarFormatError);
    expect((err as Error).message).toMatch(/checksum mismatch/);
    return false;
  }
}

describe('tar header checksum', () => {
  it('accepts the right sum and refuses any other, aligned or not', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 512, maxLength: 512 }),
        fc.nat(1 << 20),
        fc.integer({ min: 0, max: 3 }),
        fc.option(fc.tuple(fc.integer({ min: 0, max: 511 }), fc.integer({ min: 1, max: 255 })), { nil: undefined }),
        (bytes, size, shift, change) => {
          const good = block(bytes, size);
          const host = Buffer.alloc(512 + 8);
          good.copy(host, shift);
          const view = host.subarray(shift, shift + 512);
          expect(accepts(view)).toBe(true);
          if (change === undefined) return;
          const [at, delta] = change;
          // Changing the checksum field's own bytes changes the stored number instead.
          if (at >= 148 && at < 156) return;
          view[at] = (view[at]! + delta) & 0xff;
          expect(accepts(view)).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('sums all-0xff blocks without losing a carry', () => {
    const good = block(new Uint8Array(512).fill(0xff), 7);
    expect(accepts(good)).toBe(true);
    expect(accepts(Buffer.concat([Buffer.alloc(1), good]).subarray(1))).toBe(true);
  });
});
