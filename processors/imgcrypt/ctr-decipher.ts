/**
 * AES-256-CTR decryption into a buffer the caller owns. Node's Decipher.update() returns a new
 * buffer on every call; on a 300 MB layer that cost ~120 ms of main-thread CPU where the same
 * OpenSSL call writing into reused buffers took ~70 ms (the rest is faulting in fresh memory),
 * and the garbage kept RSS high until collections caught up.
 *
 * The OpenSSL here is the one Node itself is linked with: the Node binary exports its EVP_*
 * symbols (for addons), and node:ffi resolves them from the process image as
 * processors/zstd/fcntl.ts does for fcntl. A fresh context is checked against Node's own
 * Decipher on a few blocks before it is trusted. Without node:ffi or the symbols, or if that
 * check fails, Node's Decipher is used (the result is then a fresh buffer, not `output`).
 */
import { createDecipheriv } from 'node:crypto';

export interface CtrDecipher {
  /** Plaintext of `input` (the next bytes of the stream): the first input.length bytes of `output`, or a fresh buffer. */
  update(input: Buffer, output: Buffer): Buffer;
  /** Frees the native context; call once, after the last update. */
  close(): void;
  /** `openssl-ffi` or `node-crypto`, for diagnostics and tests. */
  readonly kind: 'openssl-ffi' | 'node-crypto';
}

type Pointer = bigint;
interface EvpFunctions {
  EVP_CIPHER_CTX_new(): Pointer;
  EVP_CIPHER_CTX_free(ctx: Pointer): void;
  EVP_aes_256_ctr(): Pointer;
  EVP_DecryptInit_ex(ctx: Pointer, cipher: Pointer, engine: null, key: Uint8Array, iv: Uint8Array): number;
  EVP_DecryptUpdate(ctx: Pointer, out: Uint8Array, outLength: Int32Array, input: Uint8Array, inputLength: number): number;
}

let evp: EvpFunctions | null | undefined;

function bindEvp(): EvpFunctions | null {
  if (evp !== undefined) return evp;
  evp = null;
  try {
    const ffi = process.getBuiltinModule('node:ffi') as typeof import('node:ffi') | undefined;
    if (ffi) {
      const { functions } = ffi.dlopen(null, {
        EVP_CIPHER_CTX_new: { return: 'pointer', arguments: [] },
        EVP_CIPHER_CTX_free: { return: 'void', arguments: ['pointer'] },
        EVP_aes_256_ctr: { return: 'pointer', arguments: [] },
        EVP_DecryptInit_ex: { return: 'i32', arguments: ['pointer', 'pointer', 'pointer', 'pointer', 'pointer'] },
        EVP_DecryptUpdate: { return: 'i32', arguments: ['pointer', 'pointer', 'pointer', 'pointer', 'i32'] },
      } as const);
      evp = functions as unknown as EvpFunctions;
    }
  } catch {
    evp = null;
  }
  return evp;
}

class NodeCtr implements CtrDecipher {
  readonly kind = 'node-crypto';
  private readonly decipher;
  constructor(key: Buffer, iv: Buffer) {
    this.decipher = createDecipheriv('aes-256-ctr', key, iv);
  }
  update(input: Buffer): Buffer {
    return this.decipher.update(input);
  }
  close(): void {}
}

class FfiCtr implements CtrDecipher {
  readonly kind = 'openssl-ffi';
  private readonly f: EvpFunctions;
  private ctx: Pointer;
  private readonly outLength = new Int32Array(1);
  constructor(f: EvpFunctions, key: Buffer, iv: Buffer) {
    if (key.length !== 32 || iv.length !== 16) throw new Error(`AES-256-CTR needs a 32-byte key and a 16-byte IV, got ${key.length} and ${iv.length}`);
    this.f = f;
    this.ctx = f.EVP_CIPHER_CTX_new();
    if (this.ctx === 0n) throw new Error('EVP_CIPHER_CTX_new failed');
    if (f.EVP_DecryptInit_ex(this.ctx, f.EVP_aes_256_ctr(), null, key, iv) !== 1) {
      this.close();
      throw new Error('EVP_DecryptInit_ex(aes-256-ctr) failed');
    }
  }
  update(input: Buffer, output: Buffer): Buffer {
    // OpenSSL writes input.length bytes at `output`: the bounds are checked here, not there.
    if (output.length < input.length) throw new RangeError(`CTR output buffer of ${output.length} bytes for ${input.length} bytes of input`);
    if (input.length > 0x7fffffff) throw new RangeError(`CTR input of ${input.length} bytes: more than one call can take`);
    if (this.ctx === 0n) throw new Error('CTR decipher used after close()');
    if (input.length === 0) return output.subarray(0, 0);
    if (this.f.EVP_DecryptUpdate(this.ctx, output, this.outLength, input, input.length) !== 1) throw new Error('EVP_DecryptUpdate failed');
    // CTR is a stream mode: OpenSSL emits every byte at once.
    if (this.outLength[0] !== input.length) throw new Error(`EVP_DecryptUpdate returned ${this.outLength[0]} bytes for ${input.length}`);
    return output.subarray(0, input.length);
  }
  close(): void {
    if (this.ctx === 0n) return;
    this.f.EVP_CIPHER_CTX_free(this.ctx);
    this.ctx = 0n;
  }
}

/** True when a context from `f` decrypts like Node's Decipher (counter carry included). */
function agreesWithNode(f: EvpFunctions): boolean {
  const key = Buffer.alloc(32, 0x5c);
  // The low 64 bits of the counter about to wrap: the carry must run into the high half, as in ocicrypt (Go's CTR).
  const iv = Buffer.from('000102030405060708fffffffffffffe', 'hex');
  const input = Buffer.alloc(80, 0xa7);
  let ours: Buffer;
  const ctr = new FfiCtr(f, key, iv);
  try {
    ours = Buffer.concat([ctr.update(input.subarray(0, 21), Buffer.alloc(21)), ctr.update(input.subarray(21), Buffer.alloc(59))]);
  } finally {
    ctr.close();
  }
  return ours.equals(createDecipheriv('aes-256-ctr', key, iv).update(input));
}

let ffiChecked: boolean | undefined;

export interface CtrOptions {
  /** Use Node's Decipher even when the OpenSSL route works (tests compare the two). */
  readonly forceNode?: boolean;
}

/** A decipher for AES-256-CTR with the 16-byte `iv` as a 128-bit big-endian counter (ocicrypt's layer cipher). */
export function createCtrDecipher(key: Buffer, iv: Buffer, options: CtrOptions = {}): CtrDecipher {
  const f = options.forceNode ? null : bindEvp();
  if (f && ffiChecked === undefined) {
    try {
      ffiChecked = agreesWithNode(f);
    } catch {
      ffiChecked = false;
    }
  }
  return f && ffiChecked ? new FfiCtr(f, key, iv) : new NodeCtr(key, iv);
}
