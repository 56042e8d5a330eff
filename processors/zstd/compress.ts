/**
 * zstd compression through node:zlib, with the zstd CLI's defaults: content checksum on,
 * level 3, no worker threads. Worker threads (ZSTD_c_nbWorkers > 0) break node:zlib's
 * streaming API (nodejs/node#59899: "stream.push() after EOF"), so `-T#` is accepted and ignored.
 */
import { Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

export interface CompressOptions {
  readonly level: number;
  /** Long-distance matching with this window log (`--long[=N]`), or undefined. */
  readonly longWindowLog?: number;
  readonly checksum: boolean;
  readonly chunkSize: number;
  /** Input size when known (a file), written into the frame header like the CLI does. */
  readonly pledgedSize?: number;
  /** End `output` when done (false when several inputs share one output). */
  readonly end: boolean;
}

export interface CompressResult {
  readonly inputBytes: number;
  readonly outputBytes: number;
}

export async function compressStream(input: AsyncIterable<Buffer>, output: Writable, options: CompressOptions): Promise<CompressResult> {
  const c = zlib.constants;
  const params: Record<number, number> = {
    [c.ZSTD_c_compressionLevel]: options.level,
    [c.ZSTD_c_checksumFlag]: options.checksum ? 1 : 0,
  };
  if (options.longWindowLog !== undefined) {
    params[c.ZSTD_c_enableLongDistanceMatching] = 1;
    params[c.ZSTD_c_windowLog] = options.longWindowLog;
  }
  const encoder = zlib.createZstdCompress({
    chunkSize: options.chunkSize,
    params,
    ...(options.pledgedSize !== undefined ? { pledgedSrcSize: options.pledgedSize } : {}),
  });
  let outputBytes = 0;
  const count = new Transform({
    highWaterMark: options.chunkSize,
    transform(chunk: Buffer, _enc, done) {
      outputBytes += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(input, encoder, count, output, { end: options.end });
  return { inputBytes: encoder.bytesWritten, outputBytes };
}
