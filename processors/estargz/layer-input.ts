/**
 * Turns the builder's input (a tar, tar.gz or tar.zst, from a file or stdin) into a plain tar file
 * it can read by position. A plain tar file is used in place; anything else is decompressed
 * into a private temp file that `close()` removes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

export interface TarFile {
  fd: number;
  size: number;
  close(): void;
}

type Compression = 'gzip' | 'zstd' | 'none';

function sniff(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

/** Picks the decompressor from the first bytes, then streams through it. */
class SniffingDecompressor extends Transform {
  private inner: Transform | undefined;
  private head: Buffer[] = [];
  private headLength = 0;

  private start(): void {
    const head = Buffer.concat(this.head);
    this.head = [];
    const kind = sniff(head);
    this.inner = kind === 'gzip' ? zlib.createGunzip() : kind === 'zstd' ? zlib.createZstdDecompress() : new Transform({ transform: (c, _e, cb) => cb(null, c) });
    this.inner.on('data', (c: Buffer) => this.push(c));
    this.inner.on('error', (err) => this.destroy(err));
    this.inner.write(head);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.inner) {
      this.head.push(chunk);
      this.headLength += chunk.length;
      if (this.headLength < 4) return cb();
      this.start();
      return cb();
    }
    if (this.inner.write(chunk)) cb();
    else this.inner.once('drain', () => cb());
  }

  override _flush(cb: TransformCallback): void {
    if (!this.inner) this.start();
    this.inner!.once('end', () => cb());
    this.inner!.end();
  }
}

function tempTar(): { file: string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-estargz-'));
  return { dir, file: path.join(dir, 'layer.tar') };
}

export async function openTarInput(input: string): Promise<TarFile> {
  if (input !== '-') {
    const fd = fs.openSync(input, 'r');
    const head = Buffer.alloc(4);
    fs.readSync(fd, head, 0, 4, 0);
    if (sniff(head) === 'none' && fs.fstatSync(fd).isFile()) {
      return { fd, size: fs.fstatSync(fd).size, close: () => fs.closeSync(fd) };
    }
    fs.closeSync(fd);
  }
  const { file, dir } = tempTar();
  const source = input === '-' ? fs.createReadStream('', { fd: 0, autoClose: false, highWaterMark: 1 << 20 }) : fs.createReadStream(input, { highWaterMark: 1 << 20 });
  try {
    await pipeline(source as Readable, new SniffingDecompressor(), fs.createWriteStream(file));
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`reading the input layer ${input === '-' ? 'from stdin' : input}: ${(err as Error).message}`, { cause: err });
  }
  const fd = fs.openSync(file, 'r');
  return {
    fd,
    size: fs.fstatSync(fd).size,
    close: () => {
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
