/**
 * ocicrypt's layer cipher (blockcipher/blockcipher_aes_ctr.go, imgcrypt.md §3): AES-256-CTR with
 * the 16-byte nonce as a full 128-bit big-endian counter, and HMAC-SHA256 keyed with the same
 * 32-byte key over the ciphertext only (encrypt-then-MAC). The blob is bare ciphertext, as long as
 * the plaintext.
 *
 * Decryption releases plaintext only while at least `holdBytes` stay held back; the tail is let
 * go after the HMAC over the whole ciphertext matched. On a mismatch the tail is never emitted,
 * so a reader that checks a digest of the output (containerd's diff_id) sees a short stream
 * even when it misses our exit status (containerd#6914).
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual, type Cipheriv, type Decipheriv, type Hmac } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { NONCE_BYTES, SYMMETRIC_KEY_BYTES, type LayerKeyMaterial } from './options-json.ts';

/** ocicrypt's DelayedReader keeps 10 KiB back; we keep at least this much (whole chunks). */
export const DEFAULT_HOLD_BYTES = 64 * 1024;

export class LayerIntegrityError extends Error {
  /** Ciphertext bytes read when the check failed. */
  readonly ciphertextBytes: number;
  constructor(message: string, ciphertextBytes: number) {
    super(message);
    this.name = 'LayerIntegrityError';
    this.ciphertextBytes = ciphertextBytes;
  }
}

export interface FreshLayerKeys {
  readonly symKey: Buffer;
  readonly nonce: Buffer;
}

export function generateLayerKeys(): FreshLayerKeys {
  return { symKey: randomBytes(SYMMETRIC_KEY_BYTES), nonce: randomBytes(NONCE_BYTES) };
}

/** Decrypts and authenticates one layer; feed ciphertext in order, then call verify(). */
export class LayerDecipher {
  private readonly decipher: Decipheriv;
  private readonly mac: Hmac;
  private readonly expected: Buffer;
  bytes = 0;
  constructor(keys: LayerKeyMaterial) {
    this.decipher = createDecipheriv('aes-256-ctr', keys.symKey, keys.nonce);
    this.mac = createHmac('sha256', keys.symKey);
    this.expected = keys.hmac;
  }
  /** Returns a fresh buffer: the input chunk may be reused by its producer afterwards. */
  update(ciphertext: Buffer): Buffer {
    this.mac.update(ciphertext);
    this.bytes += ciphertext.length;
    return this.decipher.update(ciphertext);
  }
  /** Throws LayerIntegrityError unless the HMAC over everything fed matches pubopts. */
  verify(withheld: number): void {
    const actual = this.mac.digest();
    this.decipher.final();
    checkLayerHmac(actual, this.expected, this.bytes, withheld);
  }
}

/** Throws LayerIntegrityError unless `actual` (the HMAC over `bytes` of ciphertext) is `expected`. */
export function checkLayerHmac(actual: Buffer, expected: Buffer, bytes: number, withheld: number): void {
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    throw new LayerIntegrityError(
      `layer integrity check failed: HMAC-SHA256 over the ${bytes} ciphertext bytes is ${actual.toString('hex')}, ` +
        `pubopts says ${expected.toString('hex')} (wrong key, or a corrupt or truncated layer); ` +
        `the last ${withheld} bytes of plaintext were withheld`,
      bytes,
    );
  }
}

/** Encrypts one layer and computes the HMAC that goes into pubopts. */
export class LayerCipher {
  private readonly cipher: Cipheriv;
  private readonly mac: Hmac;
  bytes = 0;
  constructor(keys: FreshLayerKeys) {
    this.cipher = createCipheriv('aes-256-ctr', keys.symKey, keys.nonce);
    this.mac = createHmac('sha256', keys.symKey);
  }
  update(plaintext: Buffer): Buffer {
    const ct = this.cipher.update(plaintext);
    this.mac.update(ct);
    this.bytes += plaintext.length;
    return ct;
  }
  /** The HMAC-SHA256 of all ciphertext; call once, after the last update. */
  finish(): Buffer {
    const tail = this.cipher.final();
    if (tail.length !== 0) throw new Error('AES-CTR produced bytes at final(): not a stream cipher?');
    return this.mac.digest();
  }
}

/** Tail buffer: releases chunks only while at least `holdBytes` remain held. */
export class HeldTail {
  private readonly chunks: Buffer[] = [];
  held = 0;
  private readonly holdBytes: number;
  constructor(holdBytes: number) {
    this.holdBytes = holdBytes;
  }
  push(chunk: Buffer): Buffer[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.held += chunk.length;
    }
    const out: Buffer[] = [];
    while (this.chunks.length > 0 && this.held - this.chunks[0]!.length >= this.holdBytes) {
      const first = this.chunks.shift()!;
      this.held -= first.length;
      out.push(first);
    }
    return out;
  }
  drain(): Buffer[] {
    this.held = 0;
    return this.chunks.splice(0);
  }
}

export interface DecryptOptions {
  readonly holdBytes?: number;
}

/** Plaintext of the ciphertext written in, verified: the stream errors (and never pushes the held tail) on a mismatch. */
export class LayerDecryptTransform extends Transform {
  private readonly decipher: LayerDecipher;
  private readonly tail: HeldTail;
  constructor(keys: LayerKeyMaterial, options: DecryptOptions = {}) {
    super();
    this.decipher = new LayerDecipher(keys);
    this.tail = new HeldTail(options.holdBytes ?? DEFAULT_HOLD_BYTES);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    for (const ready of this.tail.push(this.decipher.update(chunk))) this.push(ready);
    done();
  }
  override _flush(done: TransformCallback): void {
    try {
      this.decipher.verify(this.tail.held);
    } catch (err) {
      done(err as Error);
      return;
    }
    for (const ready of this.tail.drain()) this.push(ready);
    done();
  }
}

/** Encrypting Transform; `hmac()` is valid once the stream has finished. */
export class LayerEncryptTransform extends Transform {
  private readonly cipher: LayerCipher;
  private mac: Buffer | undefined;
  constructor(keys: FreshLayerKeys) {
    super();
    this.cipher = new LayerCipher(keys);
  }
  get plaintextBytes(): number {
    return this.cipher.bytes;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    done(null, this.cipher.update(chunk));
  }
  override _flush(done: TransformCallback): void {
    try {
      this.mac = this.cipher.finish();
      done();
    } catch (err) {
      done(err as Error);
    }
  }
  hmac(): Buffer {
    if (this.mac === undefined) throw new Error('layer HMAC asked for before the stream ended');
    return this.mac;
  }
}
