import { create, toBinary } from '@bufbuild/protobuf';
import { TimestampSchema } from '@bufbuild/protobuf/wkt';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeleteResponseSchema } from '../src/api/gen/containerd/task/v2/shim_pb.ts';
import { encodeDeleteResponse } from '../shims/outrigger-v2/bootstrap/delete-response.ts';

describe('encodeDeleteResponse (the `delete` subcommand output, written without the schema registry)', () => {
  it('gives the generated encoder\'s bytes for any pid, status and exit time', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 0xffffffff }),
        fc.bigInt({ min: -62135596800n, max: 253402300799n }),
        fc.nat({ max: 999_999_999 }),
        (pid, exitStatus, seconds, nanos) => {
          const ours = encodeDeleteResponse({ pid, exitStatus, exitedAt: { seconds, nanos } });
          const generated = toBinary(
            DeleteResponseSchema,
            create(DeleteResponseSchema, { pid, exitStatus, exitedAt: create(TimestampSchema, { seconds, nanos }) }),
          );
          expect(Buffer.from(ours).toString('hex')).toBe(Buffer.from(generated).toString('hex'));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('always writes exited_at, even the zero time, as the Go shims do', () => {
    expect(Buffer.from(encodeDeleteResponse({ pid: 0, exitStatus: 0, exitedAt: { seconds: 0n, nanos: 0 } })).toString('hex')).toBe('1a00');
  });

  it('refuses values that are not uint32', () => {
    expect(() => encodeDeleteResponse({ pid: -1, exitStatus: 0, exitedAt: { seconds: 0n, nanos: 0 } })).toThrow();
    expect(() => encodeDeleteResponse({ pid: 1, exitStatus: 2 ** 32, exitedAt: { seconds: 0n, nanos: 0 } })).toThrow();
  });
});
