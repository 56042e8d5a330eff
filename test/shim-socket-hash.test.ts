/**
 * The shim socket name is sha256 hex of "<address>/<namespace>/<group>" (Go's convention); `start`
 * hashes it without node:crypto (shims/outrigger-v2/bootstrap/sha256.ts). Checked against
 * node:crypto for arbitrary strings, every padding boundary, and the FIPS 180-4 examples.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../shims/outrigger-v2/bootstrap/sha256.ts';
import { socketPath } from '../shims/outrigger-v2/bootstrap/socket-address.ts';

const reference = (s: string) => createHash('sha256').update(s).digest('hex');

describe('sha256Hex', () => {
  it('gives the FIPS 180-4 example digests', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).toBe('248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
  });

  it('agrees with node:crypto at every length around the block and padding boundaries', () => {
    for (let n = 0; n <= 200; n++) {
      const s = 'x'.repeat(n);
      expect(sha256Hex(s), `length ${n}`).toBe(reference(s));
    }
  });

  it('agrees with node:crypto for arbitrary strings, multi-byte UTF-8 included', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 600 }), (s) => {
        expect(sha256Hex(s)).toBe(reference(s));
      }),
      { numRuns: 500 },
    );
  });

  it('names the socket exactly as the Go shim does', () => {
    const address = '/run/containerd/containerd.sock.ttrpc';
    expect(socketPath(address, 'k8s.io', 'sandbox-1')).toBe(`/run/containerd/s/${reference(`${address}/k8s.io/sandbox-1`)}`);
  });
});
