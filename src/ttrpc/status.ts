/**
 * gRPC status codes as ttrpc carries them in Response.status, and the error type both our
 * server and client use. containerd maps codes back to its errdefs (shim-protocol.md §1.6):
 * NotFound, AlreadyExists, FailedPrecondition, InvalidArgument, Unimplemented and Unavailable
 * keep their meaning across the wire; other errors from handlers become Unknown, as in Go.
 */
import { create } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { StatusSchema } from '../api/gen/google/rpc/status_pb.ts';
import type { Status } from '../api/gen/google/rpc/status_pb.ts';

export const Code = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;

export type Code = (typeof Code)[keyof typeof Code];

const codeNames = new Map<number, string>(Object.entries(Code).map(([name, code]) => [code, name]));

export function codeName(code: number): string {
  return codeNames.get(code) ?? `Code(${code})`;
}

/** An error with a gRPC status: thrown by handlers to choose the code, thrown by the client for non-OK responses. */
export class TtrpcError extends Error {
  readonly code: number;
  readonly details: readonly Any[];
  constructor(code: number, message: string, details: readonly Any[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = 'TtrpcError';
    this.code = code;
    this.details = details;
  }

  override toString(): string {
    return `ttrpc ${codeName(this.code)}: ${this.message}`;
  }
}

/** Go's convention: `"<what>: not found"` so containerd can strip the class name. */
export function notFound(what: string): TtrpcError {
  return new TtrpcError(Code.NotFound, `${what}: not found`);
}

export function alreadyExists(what: string): TtrpcError {
  return new TtrpcError(Code.AlreadyExists, `${what}: already exists`);
}

export function failedPrecondition(message: string): TtrpcError {
  return new TtrpcError(Code.FailedPrecondition, message);
}

export function invalidArgument(message: string): TtrpcError {
  return new TtrpcError(Code.InvalidArgument, message);
}

export function unimplemented(message: string): TtrpcError {
  return new TtrpcError(Code.Unimplemented, message);
}

export function unavailable(message: string): TtrpcError {
  return new TtrpcError(Code.Unavailable, message);
}

export function internal(message: string): TtrpcError {
  return new TtrpcError(Code.Internal, message);
}

/** The status a handler error turns into on the wire. */
export function statusFromError(err: unknown): Status {
  if (err instanceof TtrpcError) {
    return create(StatusSchema, { code: err.code, message: err.message, details: [...err.details] });
  }
  // Go's server maps os.ErrNotExist to NotFound; ENOENT is Node's spelling of it.
  if (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT') {
    return create(StatusSchema, { code: Code.NotFound, message: err.message });
  }
  const message = err instanceof Error ? err.message : String(err);
  return create(StatusSchema, { code: Code.Unknown, message });
}

export function errorFromStatus(status: Status): TtrpcError {
  return new TtrpcError(status.code, status.message, status.details);
}
