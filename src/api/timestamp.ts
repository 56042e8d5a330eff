/**
 * google.protobuf.Timestamp values with Go's conventions. containerd 1.6 (gogo, non-nullable
 * stdtime) always writes exited_at and reads a missing one as Go's zero time
 * 0001-01-01T00:00:00Z; 2.x reads a missing one as 1970. Both Go shims therefore always send
 * exited_at, using the zero time while a process runs (task-api.md §2.6); so do we.
 */
import { create } from '@bufbuild/protobuf';
import { TimestampSchema } from '@bufbuild/protobuf/wkt';
import type { Timestamp } from '@bufbuild/protobuf/wkt';

/** Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z) relative to the Unix epoch. */
export const GO_ZERO_TIME_SECONDS = -62135596800n;
/** gogo refuses timestamps at or after 10000-01-01T00:00:00Z. */
const MAX_SECONDS_EXCLUSIVE = 253402300800n;

export function goZeroTimestamp(): Timestamp {
  return create(TimestampSchema, { seconds: GO_ZERO_TIME_SECONDS, nanos: 0 });
}

export function isGoZeroTimestamp(ts: Timestamp | undefined): boolean {
  return ts === undefined || (ts.seconds === GO_ZERO_TIME_SECONDS && ts.nanos === 0);
}

/** A timestamp from nanoseconds since the Unix epoch (what `process.hrtime`-based clocks give). */
export function timestampFromEpochNanos(nanos: bigint): Timestamp {
  let seconds = nanos / 1_000_000_000n;
  let rest = nanos % 1_000_000_000n;
  if (rest < 0n) {
    seconds -= 1n;
    rest += 1_000_000_000n;
  }
  if (seconds < GO_ZERO_TIME_SECONDS || seconds >= MAX_SECONDS_EXCLUSIVE) {
    throw new RangeError(`timestamp ${nanos} ns is outside 0001-01-01..9999-12-31, which Go peers reject`);
  }
  return create(TimestampSchema, { seconds, nanos: Number(rest) });
}

export function timestampFromDate(date: Date): Timestamp {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('invalid Date for a timestamp');
  return timestampFromEpochNanos(BigInt(ms) * 1_000_000n);
}

/** Nanosecond-resolution wall clock: the epoch origin of `performance` plus its monotonic offset. */
export function nowEpochNanos(): bigint {
  // timeOrigin (~1.7e12 ms) times 1e6 would exceed 2^53, so convert it at µs precision first.
  const originNs = BigInt(Math.round(performance.timeOrigin * 1000)) * 1000n;
  return originNs + BigInt(Math.round(performance.now() * 1e6));
}

export function timestampNow(): Timestamp {
  return timestampFromEpochNanos(nowEpochNanos());
}

/** exited_at for a process: its exit time, or Go's zero time while it has not exited. */
export function exitedAtTimestamp(exitedAt: Timestamp | undefined): Timestamp {
  return exitedAt ?? goZeroTimestamp();
}

/** A Date for display; undefined for a missing value or Go's zero time ("not exited"). */
export function timestampToDate(ts: Timestamp | undefined): Date | undefined {
  if (ts === undefined || isGoZeroTimestamp(ts)) return undefined;
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000));
}
