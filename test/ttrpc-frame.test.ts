/**
 * Frame codec and incremental decoder: header layout, split/coalesced input, the 4 MiB limit
 * (exactly 4 MiB allowed, more skipped and reported), and the reserved length byte.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeFrame, Flag, HEADER_SIZE, MAX_MESSAGE_SIZE, MessageType, oversizeMessage } from '../src/ttrpc/frame.ts';
import type { Frame } from '../src/ttrpc/frame.ts';
import { FrameDecoder, FrameProtocolError } from '../src/ttrpc/frame-decoder.ts';
import type { DecodedItem } from '../src/ttrpc/frame-decoder.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** What the decoder should report for a frame, given its limit. */
function expectedItem(frame: Frame, max: number): unknown {
  if (frame.payload.length > max) {
    return { kind: 'oversized', header: { length: frame.payload.length, streamId: frame.streamId, type: frame.type, flags: frame.flags } };
  }
  return { kind: 'frame', frame: { ...frame, payload: hex(frame.payload) } };
}

function normalise(items: DecodedItem[]): unknown[] {
  return items.map((i) => (i.kind === 'frame' ? { kind: 'frame', frame: { ...i.frame, payload: hex(i.frame.payload) } } : i));
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** Cuts `bytes` at the given offsets (sorted, deduplicated, in range). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  return out;
}

const frameArb = fc.record({
  streamId: fc.nat({ max: 0xffff_ffff }),
  type: fc.constantFrom(MessageType.request, MessageType.response, MessageType.data, 7),
  flags: fc.constantFrom(0, Flag.remoteClosed, Flag.remoteOpen, Flag.remoteClosed | Flag.noData),
  payload: fc.uint8Array({ maxLength: 200 }),
});

describe('encodeFrame', () => {
  it('writes length and stream id big-endian, then type and flags, then the data', () => {
    const frame = encodeFrame({ streamId: 0x01020304, type: MessageType.data, flags: Flag.remoteClosed | Flag.noData, payload: Uint8Array.of(0xaa, 0xbb) });
    expect(hex(frame)).toBe('00000002' + '01020304' + '03' + '05' + 'aabb');
    expect(frame.length).toBe(HEADER_SIZE + 2);
  });

  it('refuses stream ids outside u32', () => {
    expect(() => encodeFrame({ streamId: 2 ** 32, type: 1, flags: 0, payload: new Uint8Array() })).toThrow(RangeError);
  });
});

describe('FrameDecoder', () => {
  it('decodes the same frames however the byte stream is split or coalesced', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), fc.constantFrom(64, 200), (frames, cuts, max) => {
        const bytes = concat(frames.map(encodeFrame));
        const expected = frames.map((f) => expectedItem(f, max));
        const whole = new FrameDecoder(max);
        expect(normalise(whole.push(bytes))).toEqual(expected);
        const pieces = new FrameDecoder(max);
        const got = split(bytes, cuts).flatMap((chunk) => pieces.push(chunk));
        expect(normalise(got)).toEqual(expected);
        expect(pieces.idle).toBe(true);
        expect(pieces.bufferedBytes).toBe(0);
      }),
    );
  });

  it('decodes byte by byte', () => {
    const frames: Frame[] = [
      { streamId: 1, type: 1, flags: 0, payload: Uint8Array.of(1, 2, 3) },
      { streamId: 3, type: 2, flags: 0, payload: new Uint8Array() },
    ];
    const bytes = concat(frames.map(encodeFrame));
    const d = new FrameDecoder();
    const got: DecodedItem[] = [];
    for (const b of bytes) got.push(...d.push(Uint8Array.of(b)));
    expect(normalise(got)).toEqual(frames.map((f) => expectedItem(f, MAX_MESSAGE_SIZE)));
  });

  it('allows exactly 4 MiB and skips 4 MiB + 1 without buffering it, then carries on', () => {
    const d = new FrameDecoder();
    const exact = encodeFrame({ streamId: 1, type: 1, flags: 0, payload: new Uint8Array(MAX_MESSAGE_SIZE) });
    const items = d.push(exact);
    expect(items).toHaveLength(1);
    expect(items[0]!.kind).toBe('frame');

    const over = encodeFrame({ streamId: 3, type: 1, flags: 0, payload: new Uint8Array(MAX_MESSAGE_SIZE + 1) });
    const next = encodeFrame({ streamId: 5, type: 1, flags: 0, payload: Uint8Array.of(9) });
    const got: DecodedItem[] = [];
    for (let i = 0; i < over.length; i += 65536) {
      got.push(...d.push(over.subarray(i, i + 65536)));
      expect(d.bufferedBytes).toBeLessThan(65536);
    }
    got.push(...d.push(next));
    expect(got.map((i) => (i.kind === 'frame' ? `frame ${i.frame.streamId}` : `oversized ${i.header.streamId} ${i.header.length}`))).toEqual([
      `oversized 3 ${MAX_MESSAGE_SIZE + 1}`,
      'frame 5',
    ]);
    expect(oversizeMessage(MAX_MESSAGE_SIZE + 1)).toBe('message length 4194305 exceed maximum message size of 4194304');
  });

  it('raises FrameProtocolError with the offset when the reserved high length byte is set', () => {
    const d = new FrameDecoder();
    const ok = encodeFrame({ streamId: 1, type: 1, flags: 0, payload: Uint8Array.of(1) });
    d.push(ok);
    let error: unknown;
    try {
      d.push(Uint8Array.of(0x01, 0, 0, 0, 0, 0, 0, 1, 1, 0));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(FrameProtocolError);
    expect((error as FrameProtocolError).offset).toBe(ok.length);
    expect(() => d.push(new Uint8Array(1))).toThrow(/after a protocol error/);
  });
});
