/**
 * The buffering half of the no-payload mode (the containerd lookup itself runs against a real
 * containerd in test/e2e/imgcrypt-containerd-lookup.test.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { bufferLayer, findLayerDescriptor, resolveFromContainerd } from '../processors/imgcrypt/containerd-lookup.ts';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'imgcrypt-buffer-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

describe('bufferLayer', () => {
  it('hashes the stream, leaves no file behind and serves the bytes back through the open fd', async () => {
    const parts = [randomBytes(70_000), randomBytes(1), randomBytes(300_000)];
    const whole = Buffer.concat(parts);
    const buffered = await bufferLayer(Readable.from(parts), tmpRoot);
    try {
      expect(buffered.digest).toBe(`sha256:${createHash('sha256').update(whole).digest('hex')}`);
      expect(buffered.size).toBe(whole.length);
      expect(fs.readdirSync(tmpRoot)).toEqual([]);
      expect(fs.readFileSync(buffered.path)).toEqual(whole);
      // Only the owner may read it, even while it exists.
      expect(fs.fstatSync(Number(buffered.path.split('/').at(-1))).mode & 0o777).toBe(0o600);
    } finally {
      buffered.close();
    }
  });

  it('names the directory when it cannot buffer', async () => {
    await expect(bufferLayer(Readable.from([Buffer.from('x')]), path.join(tmpRoot, 'missing'))).rejects.toThrow(/cannot buffer the layer in .*missing/);
  });
});

describe('findLayerDescriptor', () => {
  it('fails with the socket named when containerd is not there', async () => {
    const socket = path.join(tmpRoot, 'no-containerd.sock');
    await expect(findLayerDescriptor(`sha256:${'0'.repeat(64)}`, { address: socket, timeoutMs: 2_000 })).rejects.toThrow(/no-containerd\.sock/);
    await expect(resolveFromContainerd(Readable.from([Buffer.from('layer')]), { address: socket, timeoutMs: 2_000 })).rejects.toThrow(
      /no payload; looking the layer up in containerd: .*no-containerd\.sock/,
    );
  });
});
