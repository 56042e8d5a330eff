/**
 * Reads an eStargz TOC from the end of the compressed input, ahead of the decoded stream.
 *
 * The TOC is the last entry of the layer, so the verifying unpack gets its bytes only when the
 * inflate reaches the end, and parsing it (JSON.parse plus the per-entry checks, ~20 ms for 9k
 * entries) used to be serial work after the last byte. Once all input has been read, the footer
 * already says where the TOC's gzip member starts; while the inflate worker is still busy with
 * the last megabytes, the main thread inflates that one member from the retained input and
 * parses it here.
 *
 * Nothing is trusted from this: the result is used only if its bytes equal, byte for byte, the
 * `stargz.index.json` content the tar walker later captures from the real stream (then the
 * parse of those bytes is the same parse). Any surprise (no single plain member there, a header
 * other than a plain stargz.index.json entry, an invalid TOC) just means no result, and the
 * unpack judges the layer from the stream as before, with its own error messages.
 */
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { decodeBasicHeader } from '../../src/tar/header.ts';
import { bindFastCrc32, bindWholeInflate, loadFfiQuietly, type WholeInflate } from './libdeflate.ts';
import type { Footer } from './footer.ts';
import { defineGzipMembers, GzipMemberDecoder, type OutputSpace } from './gzip-members.ts';
import { parseTocInSlices, TOC_NAME_BYTES, type Toc } from './toc.ts';

export interface TocAhead {
  /** The TOC entry's content as decoded from the member the footer points at. */
  content: Buffer;
  digest: string;
  toc: Toc;
}

const BLOCK = 512;
/**
 * Larger TOCs are left to the stream (63k entries are 22 MB): memory for a second copy is taken
 * only up to this, and only once the entry's header says how large it is (a TOC-sized zip bomb
 * costs nothing here).
 */
const AHEAD_MAX_BYTES = 64 * 1024 * 1024;

/** Lets queued events (decoded ranges to walk and write) run between the steps. */
function yieldToEvents(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * `input`: the compressed bytes from `footer.tocOffset` to the end of the layer (footer
 * included). Resolves to the parsed TOC, or undefined when it cannot be read ahead.
 */
export async function readTocAhead(footer: Footer, input: Buffer): Promise<TocAhead | undefined> {
  const member = input.subarray(0, input.length - footer.size);
  if (member.length <= 0) return undefined;
  // The TOC member is a header block, the content, padding and the end marker.
  let content: Buffer;
  try {
    const whole = wholeMemberContent(member);
    if (whole !== undefined) {
      content = whole;
    } else {
      const streamed = streamedMemberContent(member);
      if (streamed === undefined) return undefined;
      content = streamed;
    }
  } catch {
    return undefined;
  }
  await yieldToEvents();
  const digest = await digestInSteps(content);
  try {
    return { content, digest, toc: await parseTocInSlices(content, yieldToEvents) };
  } catch {
    return undefined;
  }
}

/** Bytes hashed per step of digestInSteps (~0.4 ms of sha256 here). */
const HASH_STEP = 512 * 1024;

/** sha256Digest, a step at a time with queued events let in between. */
async function digestInSteps(content: Buffer): Promise<string> {
  const hash = createHash('sha256');
  for (let at = 0; at < content.length; at += HASH_STEP) {
    hash.update(content.subarray(at, Math.min(content.length, at + HASH_STEP)));
    await yieldToEvents();
  }
  return `sha256:${hash.digest('hex')}`;
}

/**
 * The content size a TOC member's first header block announces, when it is a plain
 * stargz.index.json entry of a size read ahead (a TOC-sized zip bomb costs nothing here).
 */
function tocContentSize(block: Buffer): number | undefined {
  const header = decodeBasicHeader(block, 0);
  if ((header.typeflag !== '0' && header.typeflag !== '\0') || !header.name.equals(TOC_NAME_BYTES)) return undefined;
  if (header.size === 0 || header.size > AHEAD_MAX_BYTES) return undefined;
  return header.size;
}

/** The TOC entry's content when `out` (a decoded TOC member) starts with a plain stargz.index.json header. */
function contentOf(out: Buffer): Buffer | undefined {
  if (out.length < BLOCK) return undefined;
  const size = tocContentSize(out);
  if (size === undefined || BLOCK + size > out.length) return undefined;
  return out.subarray(BLOCK, BLOCK + size);
}

/** The gzip member decoder with libdeflate's whole-member inflate and CRC32, or null without libdeflate. */
let wholeDecoding: { Decoder: typeof GzipMemberDecoder; whole: WholeInflate } | null | undefined;

function libdeflateDecoding(): typeof wholeDecoding {
  if (wholeDecoding === undefined) {
    const ffi = loadFfiQuietly();
    const whole = bindWholeInflate(zlib, ffi);
    wholeDecoding = whole ? { Decoder: defineGzipMembers(zlib, bindFastCrc32(zlib, ffi)).GzipMemberDecoder, whole } : null;
  }
  return wholeDecoding;
}

/**
 * The member decoded at once by libdeflate (through the same decoder as the stream, so with the
 * same CRC32 and ISIZE checks) into a buffer of the size its trailer states, capped before
 * anything is allocated; undefined without libdeflate or when the member is not exactly that
 * (then the streaming decoder below has the last word).
 */
function wholeMemberContent(member: Buffer): Buffer | undefined {
  const decoding = libdeflateDecoding();
  if (!decoding || member.length < 18) return undefined;
  const isize = member.readUInt32LE(member.length - 4);
  if (isize < BLOCK || isize > AHEAD_MAX_BYTES + 64 * 1024) return undefined;
  const decoder = new decoding.Decoder({ memberStart() {}, data() {}, memberEnd() {} });
  const space: OutputSpace = { buffer: Buffer.allocUnsafe(isize), fill: 0 };
  decoder.useOutput(space);
  decoder.useWholeInflate(decoding.whole, isize, member.length);
  decoder.lastInput();
  try {
    if (decoder.push(member) !== member.length || decoder.members !== 1 || space.fill !== isize) return undefined;
  } catch {
    return undefined;
  }
  return contentOf(space.buffer);
}

/** The member through zlib: the header block first, then exactly the content into a buffer of its size. */
function streamedMemberContent(member: Buffer): Buffer | undefined {
  const decoder = new GzipMemberDecoder({ memberStart() {}, data() {}, memberEnd() {} });
  const space: OutputSpace = { buffer: Buffer.alloc(BLOCK), fill: 0 };
  decoder.useOutput(space);
  let at = decoder.push(member);
  if (space.fill < BLOCK) return undefined;
  const size = tocContentSize(space.buffer);
  if (size === undefined) return undefined;
  const content = Buffer.allocUnsafe(size);
  space.buffer = content;
  space.fill = 0;
  while (at < member.length && space.fill < content.length) at += decoder.push(member.subarray(at));
  if (space.fill < content.length) return undefined;
  return content;
}
