/**
 * ttrpc framing (shim-protocol.md §1.1–1.2): a 10-byte header — data length u32 BE, stream id
 * u32 BE, message type u8, flags u8 — then the data. The length counts the data only.
 */

export const HEADER_SIZE = 10;
/** Go's limit, `4 << 20`; a length equal to it is allowed. */
export const MAX_MESSAGE_SIZE = 4 << 20;
/**
 * Lengths are below 16 MiB, so the first header byte is always 0 (reserved by the protocol).
 * A header with it set is not ttrpc; the decoder treats it as a protocol violation.
 */
export const RESERVED_LENGTH_LIMIT = 1 << 24;

export const MessageType = {
  request: 1,
  response: 2,
  data: 3,
} as const;

export const Flag = {
  /** Request: the client sends no data frames. Data: this is the last one. */
  remoteClosed: 0x1,
  /** Request: the client will send data frames. */
  remoteOpen: 0x2,
  /** Data: the frame carries no payload. */
  noData: 0x4,
} as const;

export interface FrameHeader {
  readonly length: number;
  readonly streamId: number;
  readonly type: number;
  readonly flags: number;
}

export interface Frame {
  readonly streamId: number;
  readonly type: number;
  readonly flags: number;
  readonly payload: Uint8Array;
}

export function encodeFrame(frame: Frame): Uint8Array {
  const { streamId, type, flags, payload } = frame;
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > 0xffff_ffff) {
    throw new RangeError(`ttrpc frame: stream id ${streamId} is not a u32`);
  }
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length);
  view.setUint32(4, streamId);
  view.setUint8(8, type);
  view.setUint8(9, flags);
  out.set(payload, HEADER_SIZE);
  return out;
}

export function decodeHeader(bytes: Uint8Array): FrameHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  return { length: view.getUint32(0), streamId: view.getUint32(4), type: view.getUint8(8), flags: view.getUint8(9) };
}

/** The text Go's ttrpc uses for an oversized message (status ResourceExhausted). */
export function oversizeMessage(length: number, max: number = MAX_MESSAGE_SIZE): string {
  return `message length ${length} exceed maximum message size of ${max}`;
}
