/**
 * The error every failed call of src/grpc raises: which method (`/pkg.Service/Method`), which
 * gRPC status, and the peer's message, so a caller several layers up can still tell what failed.
 * Status codes are the same numbers ttrpc carries, so they are shared with src/ttrpc/status.ts.
 */
import { Code, codeName } from '../ttrpc/status.ts';

export { Code as GrpcCode, codeName as grpcCodeName };

export class GrpcCallError extends Error {
  /** Full method path, e.g. `/runtime.v1.RuntimeService/RunPodSandbox`. */
  readonly method: string;
  /** gRPC status code (GrpcCode). */
  readonly code: number;
  /** The status message as the server (or grpc-js, for local failures) gave it. */
  readonly details: string;
  constructor(method: string, code: number, details: string, options?: ErrorOptions) {
    super(`grpc ${method}: ${codeName(code)}: ${details}`, options);
    this.name = 'GrpcCallError';
    this.method = method;
    this.code = code;
    this.details = details;
  }
}
