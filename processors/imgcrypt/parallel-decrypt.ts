/**
 * The stream processor's decryption: AES-256-CTR on the main thread (ctr-decipher.ts) and the
 * HMAC-SHA256 over the same ciphertext on a worker thread (hmac-worker.ts), both reading the
 * chunks that shared-chunk-reader.ts put in shared memory. The guarantee is layer-cipher.ts's,
 * unchanged: plaintext is released only while at least `holdBytes` stay held back, and the held
 * tail only after the HMAC over every ciphertext byte matched pubopts; on a mismatch, a read
 * error or a failed worker, the generator throws and the tail never comes out.
 *
 * Plaintext is decrypted into a few reused buffers, so a chunk the generator yields stays valid
 * only until the consumer has asked for two more: time for one write to finish while the next
 * chunk is decrypted. processors/zstd's decodeStream (done with a chunk when it asks for the
 * next) and the processor's writer keep to that.
 *
 * A layer that fits in one chunk is hashed here instead: a round trip to a worker costs more
 * than hashing one chunk (and the worker may not even have started yet).
 */
import { GarbagePacer } from '../zstd/garbage-pacer.ts';
import { createCtrDecipher, type CtrOptions } from './ctr-decipher.ts';
import type { HmacWorker } from './hmac-worker.ts';
import { checkLayerHmac, DEFAULT_HOLD_BYTES, HeldTail, LayerDecipher } from './layer-cipher.ts';
import type { LayerKeyMaterial } from './options-json.ts';
import type { SharedChunkReader } from './shared-chunk-reader.ts';

export interface ParallelDecryptOptions extends CtrOptions {
  readonly holdBytes?: number;
  /**
   * Bytes of fresh plaintext buffers between forced young-generation collections (only the
   * fallback cipher makes them: garbage-pacer.ts); 0 or absent = off, e.g. when a decoder
   * downstream paces.
   */
  readonly gcEvery?: number;
}

/** Output buffers: taken for a chunk, given back once the consumer is done with it. */
class OutputBuffers {
  private readonly free: Buffer[] = [];
  /** ArrayBuffers of the buffers taken and not given back yet. */
  private readonly inUse = new Set<ArrayBufferLike>();
  private readonly size: number;
  constructor(size: number) {
    this.size = size;
  }
  take(): Buffer {
    const buffer = this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
    this.inUse.add(buffer.buffer);
    return buffer;
  }
  /**
   * Gives back the buffer that `chunk` views. Only a buffer in use goes back, and only once: a
   * buffer twice in the free list would be decrypted into for two chunks at the same time.
   */
  give(chunk: Buffer): void {
    if (this.inUse.delete(chunk.buffer)) this.free.push(Buffer.from(chunk.buffer as ArrayBuffer, 0, this.size));
  }
}

/**
 * Plaintext of the layer `reader` reads, verified by `hmac`. The caller owns both and closes
 * them afterwards (whether or not this generator ran to its end).
 */
export async function* decryptSharedChunks(reader: SharedChunkReader, keys: LayerKeyMaterial, hmac: HmacWorker, options: ParallelDecryptOptions = {}): AsyncGenerator<Buffer> {
  const tail = new HeldTail(options.holdBytes ?? DEFAULT_HOLD_BYTES);
  const first = await reader.next();
  if (first === undefined || reader.exhausted) {
    const decipher = new LayerDecipher(keys);
    if (first !== undefined) for (const ready of tail.push(decipher.update(first.bytes))) yield ready;
    decipher.verify(tail.held);
    yield* tail.drain();
    return;
  }

  hmac.begin(keys.symKey, reader.memories, (index) => reader.release(index));
  hmac.onFailure((err) => reader.fail(err));
  const decipher = createCtrDecipher(keys.symKey, keys.nonce, options);
  const outputs = new OutputBuffers(reader.chunkBytes);
  /** Chunks yielded whose consumer may still be using them, oldest first. */
  const handedOut: Buffer[] = [];
  const pacer = new GarbagePacer(options.gcEvery ?? 0);
  let bytes = 0;
  try {
    for (let chunk: typeof first | undefined = first; chunk !== undefined; chunk = await reader.next()) {
      // The worker starts on these bytes while this thread decrypts them; the input buffer is
      // refilled only after the worker said it is done (this thread has long finished with it).
      hmac.update(chunk.index, chunk.bytes.length);
      bytes += chunk.bytes.length;
      const into = outputs.take();
      const plaintext = decipher.update(chunk.bytes, into);
      if (plaintext.buffer !== into.buffer) {
        // The fallback cipher made a fresh buffer.
        outputs.give(into);
        pacer.allocated(plaintext.length);
      }
      for (const ready of tail.push(plaintext)) {
        yield ready;
        // Resumed: the consumer asked for the chunk after `ready`, so the one before it is done with.
        handedOut.push(ready);
        if (handedOut.length > 1) outputs.give(handedOut.shift()!);
      }
    }
    const actual = await hmac.digest();
    checkLayerHmac(actual, keys.hmac, bytes, tail.held);
  } finally {
    decipher.close();
  }
  yield* tail.drain();
}
