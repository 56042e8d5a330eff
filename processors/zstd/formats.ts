/** The compressed formats the processor decodes, told apart by their first bytes as containerd does. */
import { ZSTD_MAGIC } from './zstd-frame-scanner.ts';

export type Format = 'zstd' | 'gzip';

/** The format of a stream from its first 4 bytes; undefined when it is neither. */
export function detectFormat(head: Uint8Array): Format | undefined {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length < 4) return undefined;
  const magic = (head[0]! | (head[1]! << 8) | (head[2]! << 16) | (head[3]! << 24)) >>> 0;
  // zstd:chunked and other writers may start with a skippable frame (0x184D2A50..5F).
  if (magic === ZSTD_MAGIC || (magic & 0xfffffff0) >>> 0 === 0x184d2a50) return 'zstd';
  return undefined;
}
