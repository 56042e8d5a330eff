/** Any packing with containerd's bare type URLs, JSON-in-Any, and Go-compatible timestamps. */
import { create, toBinary } from '@bufbuild/protobuf';
import { AnySchema } from '@bufbuild/protobuf/wkt';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TaskExitSchema, TaskOOMSchema } from '../src/api/gen/containerd/events/task_pb.ts';
import { OptionsSchema as RuncOptionsSchema } from '../src/api/gen/containerd/runc/v1/oci_pb.ts';
import { OptionsSchema as RuntimeOptionsSchema } from '../src/api/gen/runtimeoptions/v1/api_pb.ts';
import { forwardRequestFor, isValidIdentifier, TASK_EVENT_TOPICS, topicOf } from '../src/api/task-events.ts';
import {
  exitedAtTimestamp,
  GO_ZERO_TIME_SECONDS,
  goZeroTimestamp,
  isGoZeroTimestamp,
  timestampFromDate,
  timestampFromEpochNanos,
  timestampNow,
  timestampToDate,
} from '../src/api/timestamp.ts';
import {
  anyIs,
  AnyTypeError,
  OCI_LINUX_RESOURCES_TYPE_URL,
  OCI_PROCESS_TYPE_URL,
  packAny,
  packJsonAny,
  unpackAny,
  unpackJsonAny,
} from '../src/api/typeurl.ts';

describe('packAny / unpackAny', () => {
  it('uses the bare full name, never a type.googleapis.com/ prefix', () => {
    const any = packAny(RuncOptionsSchema, { binaryName: 'crun', systemdCgroup: true });
    expect(any.typeUrl).toBe('containerd.runc.v1.Options');
    expect(packAny(TaskExitSchema, {}).typeUrl).toBe('containerd.events.TaskExit');
    expect(unpackAny(any, RuncOptionsSchema).binaryName).toBe('crun');
  });

  it('round-trips runc Options for any field values', () => {
    fc.assert(
      fc.property(fc.string(), fc.nat({ max: 0xffff_ffff }), fc.boolean(), (root, ioUid, noPivot) => {
        const back = unpackAny(packAny(RuncOptionsSchema, { root, ioUid, noPivotRoot: noPivot }), RuncOptionsSchema);
        expect([back.root, back.ioUid, back.noPivotRoot]).toEqual([root, ioUid, noPivot]);
      }),
    );
  });

  it('accepts the prefixed form containerd 2.x may produce, but not another type', () => {
    const prefixed = create(AnySchema, {
      typeUrl: 'type.googleapis.com/runtimeoptions.v1.Options',
      value: toBinary(RuntimeOptionsSchema, create(RuntimeOptionsSchema, { configPath: '/etc/x.toml' })),
    });
    expect(anyIs(prefixed, RuntimeOptionsSchema)).toBe(true);
    expect(unpackAny(prefixed, RuntimeOptionsSchema).configPath).toBe('/etc/x.toml');
    expect(() => unpackAny(prefixed, RuncOptionsSchema)).toThrow(AnyTypeError);
    expect(() => unpackAny(create(AnySchema, {}), RuncOptionsSchema)).toThrow(/no type URL/);
  });

  it('reports a value that does not parse as the named type', () => {
    const broken = create(AnySchema, { typeUrl: 'containerd.runc.v1.Options', value: Uint8Array.of(0x0a, 0x05, 0x01) });
    expect(() => unpackAny(broken, RuncOptionsSchema)).toThrow(/not a valid containerd.runc.v1.Options/);
  });
});

describe('JSON in Any (OCI runtime-spec types)', () => {
  it('packs the process spec as UTF-8 JSON under the typeurl registration', () => {
    const process = { terminal: false, user: { uid: 0, gid: 0 }, args: ['sh', '-c', 'echo é'], cwd: '/' };
    const any = packJsonAny(OCI_PROCESS_TYPE_URL, process);
    expect(any.typeUrl).toBe('types.containerd.io/opencontainers/runtime-spec/1/Process');
    expect(Buffer.from(any.value).toString('utf8')).toBe(JSON.stringify(process));
    expect(unpackJsonAny(any, OCI_PROCESS_TYPE_URL)).toEqual(process);
    expect(OCI_LINUX_RESOURCES_TYPE_URL).toBe('types.containerd.io/opencontainers/runtime-spec/1/LinuxResources');
  });

  it('like the Go shim, ignores the URL unless asked to check it, and rejects non-JSON', () => {
    const any = packJsonAny('something/else', { cwd: '/' });
    expect(unpackJsonAny(any)).toEqual({ cwd: '/' });
    expect(() => unpackJsonAny(any, OCI_PROCESS_TYPE_URL)).toThrow(AnyTypeError);
    expect(() => unpackJsonAny(create(AnySchema, { typeUrl: OCI_PROCESS_TYPE_URL, value: Uint8Array.of(0x7b) }))).toThrow(/not JSON/);
  });
});

describe('timestamps', () => {
  it('Go zero time is 0001-01-01T00:00:00Z = -62135596800 s', () => {
    expect(GO_ZERO_TIME_SECONDS).toBe(-62135596800n);
    expect(new Date(Number(GO_ZERO_TIME_SECONDS) * 1000).toISOString()).toBe('0001-01-01T00:00:00.000Z');
    expect(isGoZeroTimestamp(goZeroTimestamp())).toBe(true);
    expect(exitedAtTimestamp(undefined)).toEqual(goZeroTimestamp());
    expect(timestampToDate(goZeroTimestamp())).toBeUndefined();
  });

  it('converts epoch nanoseconds exactly, including before 1970', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -62135596800n * 1_000_000_000n, max: 253402300799n * 1_000_000_000n }), (ns) => {
        const ts = timestampFromEpochNanos(ns);
        expect(ts.nanos).toBeGreaterThanOrEqual(0);
        expect(ts.nanos).toBeLessThan(1_000_000_000);
        expect(ts.seconds * 1_000_000_000n + BigInt(ts.nanos)).toBe(ns);
      }),
    );
    expect(() => timestampFromEpochNanos(253402300800n * 1_000_000_000n)).toThrow(RangeError);
  });

  it('now and Date conversions agree with the wall clock to the millisecond', () => {
    const before = Date.now();
    const now = timestampNow();
    const after = Date.now();
    const ms = Number(now.seconds) * 1000 + now.nanos / 1e6;
    expect(ms).toBeGreaterThanOrEqual(before - 1);
    expect(ms).toBeLessThanOrEqual(after + 1);
    const d = new Date('2024-02-03T04:05:06.789Z');
    expect(timestampToDate(timestampFromDate(d))).toEqual(d);
  });
});

describe('task events', () => {
  it('every event but TaskIO has its topic; the envelope is stamped and validated', () => {
    expect(TASK_EVENT_TOPICS.size).toBe(10);
    expect(topicOf(TaskOOMSchema)).toBe('/tasks/oom');
    const req = forwardRequestFor('k8s.io', TaskExitSchema, { containerId: 'c', id: 'c', exitStatus: 1 });
    expect(req.envelope?.topic).toBe('/tasks/exit');
    expect(req.envelope?.namespace).toBe('k8s.io');
    expect(req.envelope?.timestamp?.seconds).toBeGreaterThan(0n);
    expect(req.envelope?.event?.typeUrl).toBe('containerd.events.TaskExit');
    expect(() => forwardRequestFor('bad namespace', TaskOOMSchema, {})).toThrow(/not a valid containerd identifier/);
    expect(['default', 'k8s.io', 'a-b_c'].every(isValidIdentifier)).toBe(true);
    expect(['', '-a', 'a..b', 'a/b', 'x'.repeat(77)].some(isValidIdentifier)).toBe(false);
  });
});
