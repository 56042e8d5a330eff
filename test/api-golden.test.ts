/**
 * Golden bytes for every message kind we put on the wire. Expected bytes are written out by
 * hand from the field tables in task-api.md / shim-protocol.md (tag byte = field << 3 | wire
 * type; 0 varint, 2 length-delimited), or copied from the byte captures those notes report
 * ([obs] `12 04 08 bb db 01`, the `delete` stdout, the zero-length Empty response frame).
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, MessageInitShape } from '@bufbuild/protobuf';
import { TimestampSchema } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { TaskExitSchema, TaskOOMSchema } from '../src/api/gen/containerd/events/task_pb.ts';
import { ProcessDetailsSchema } from '../src/api/gen/containerd/runc/v1/oci_pb.ts';
import { ForwardRequestSchema } from '../src/api/gen/containerd/services/events/ttrpc/v1/events_pb.ts';
import {
  ConnectResponseSchema,
  CreateTaskResponseSchema,
  DeleteResponseSchema,
  PidsResponseSchema,
  StartResponseSchema,
  StateResponseSchema,
  StatsResponseSchema,
  WaitResponseSchema,
} from '../src/api/gen/containerd/task/v2/shim_pb.ts';
import { Status as TaskStatus } from '../src/api/gen/containerd/types/task/task_pb.ts';
import { MetricsSchema as V2MetricsSchema } from '../src/api/gen/io/containerd/cgroups/v2/metrics_pb.ts';
import { MetricsSchema as V1MetricsSchema } from '../src/api/gen/io/containerd/cgroups/v1/metrics_pb.ts';
import { RequestSchema, ResponseSchema } from '../src/api/gen/ttrpc/request_pb.ts';
import { forwardRequestFor } from '../src/api/task-events.ts';
import { goZeroTimestamp } from '../src/api/timestamp.ts';
import { OCICRYPT_PAYLOAD_TYPE_URL, packAny, packJsonAny } from '../src/api/typeurl.ts';
import { AnySchema } from '@bufbuild/protobuf/wkt';
import { encodeFrame, MessageType } from '../src/ttrpc/frame.ts';
import { keyValuesFromMetadata } from '../src/ttrpc/metadata.ts';
import { StatusSchema } from '../src/api/gen/google/rpc/status_pb.ts';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const ascii = (s: string) => Buffer.from(s, 'ascii').toString('hex');
/** A length-delimited field with a one-byte length, spelled out: tag, length, bytes. */
const ld = (tag: string, bodyHex: string) => {
  const len = bodyHex.replace(/\s+/g, '').length / 2;
  if (len > 127) throw new Error('golden helper handles one-byte lengths only');
  return `${tag} ${len.toString(16).padStart(2, '0')} ${bodyHex}`;
};
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function expectBytes<D extends DescMessage>(schema: D, init: MessageInitShape<D>, expectedHex: string): void {
  const bytes = toBinary(schema, create(schema, init));
  expect(toHex(bytes)).toBe(toHex(hex(expectedHex)));
  // and back: what a Go peer sends decodes to the same message
  expect(toBinary(schema, fromBinary(schema, hex(expectedHex)))).toEqual(bytes);
}

/** Go's zero time, seconds -62135596800 as a ten-byte two's-complement varint. */
const ZERO_TIME = '08 80 92 b8 c3 98 fe ff ff ff 01';

describe('golden bytes of Task API responses', () => {
  it('CreateTaskResponse{pid 28091} and its Response are the captured `12 04 08 bb db 01`', () => {
    expectBytes(CreateTaskResponseSchema, { pid: 28091 }, '08 bb db 01');
    expectBytes(ResponseSchema, { payload: hex('08 bb db 01') }, '12 04 08 bb db 01');
  });

  it('DeleteResponse matches the captured stdout of the Go shim`s delete', () => {
    // pid 28091, exit 137, exited_at decoded from the capture: 1795325159 s, 726898900 ns
    expectBytes(
      DeleteResponseSchema,
      { pid: 28091, exitStatus: 137, exitedAt: create(TimestampSchema, { seconds: 1795325159n, nanos: 726898900 }) },
      '08 bb db 01 10 89 01 1a 0c 08 e7 f9 89 d8 06 10 d4 b1 ce da 02',
    );
  });

  it('StateResponse of a running init carries status RUNNING and the Go zero exited_at', () => {
    expectBytes(
      StateResponseSchema,
      { id: 'c1', bundle: '/b', pid: 42, status: TaskStatus.RUNNING, exitedAt: goZeroTimestamp() },
      [ld('0a', ascii('c1')), ld('12', ascii('/b')), '18 2a', '20 02', ld('52', ZERO_TIME)].join(' '),
    );
  });

  it('StartResponse, WaitResponse and ConnectResponse', () => {
    expectBytes(StartResponseSchema, { pid: 300 }, '08 ac 02');
    expectBytes(WaitResponseSchema, { exitStatus: 3, exitedAt: create(TimestampSchema, { seconds: 1n, nanos: 2 }) }, `08 03 ${ld('12', '08 01 10 02')}`);
    // version stays empty, as the runc shim leaves it
    expectBytes(ConnectResponseSchema, { shimPid: 1000, taskPid: 1001 }, '08 e8 07 10 e9 07');
  });

  it('PidsResponse: exec processes carry containerd.runc.v1.ProcessDetails with a bare type URL', () => {
    const info = packAny(ProcessDetailsSchema, { execId: 'e1' });
    const anyHex = [ld('0a', ascii('containerd.runc.v1.ProcessDetails')), ld('12', ld('0a', ascii('e1')))].join(' ');
    expectBytes(
      PidsResponseSchema,
      { processes: [{ pid: 7 }, { pid: 8, info }] },
      [ld('0a', '08 07'), ld('0a', `08 08 ${ld('12', anyHex)}`)].join(' '),
    );
  });

  it('StatsResponse with cgroup v2 Metrics: cpu.usage_usec (2.1), memory.usage (4.32) and usage_limit (4.33)', () => {
    const stats = packAny(V2MetricsSchema, { cpu: { usageUsec: 5n }, memory: { usage: 4096n, usageLimit: 8192n } });
    // field 32 varint → tag 0x80 0x02; field 33 → 0x88 0x02
    const metrics = [ld('12', '08 05'), ld('22', '80 02 80 20 88 02 80 40')].join(' ');
    expectBytes(StatsResponseSchema, { stats }, ld('0a', [ld('0a', ascii('io.containerd.cgroups.v2.Metrics')), ld('12', metrics)].join(' ')));
  });

  it('cgroup v1 Metrics nest memory usage in MemoryEntry (4.33.2) and CPU in nanoseconds (3.1.1)', () => {
    expectBytes(
      V1MetricsSchema,
      { pids: { current: 2n }, cpu: { usage: { total: 7n } }, memory: { usage: { usage: 9n, limit: 10n } } },
      [ld('12', '08 02'), ld('1a', ld('0a', '08 07')), ld('22', `8a 02 ${'04'} 08 0a 10 09`)].join(' '),
    );
  });
});

describe('golden bytes of JSON-in-Any', () => {
  it('the imgcrypt payload: 0A 21 "io.containerd.ocicrypt.v1.Payload" 12 <varint> JSON; ~270 bytes give 12 8E 02', () => {
    const json = { DecryptConfig: { Parameters: { privkeys: ['x'.repeat(167)] } }, Descriptor: { mediaType: 'm', digest: 'd', size: 1 } };
    const text = JSON.stringify(json);
    expect(text.length).toBe(270);
    const bytes = toBinary(AnySchema, packJsonAny(OCICRYPT_PAYLOAD_TYPE_URL, json));
    expect(toHex(bytes)).toBe(`0a21${ascii('io.containerd.ocicrypt.v1.Payload')}128e02${ascii(text)}`);
  });
});

describe('golden bytes of ttrpc envelopes and frames', () => {
  it('a success Response for google.protobuf.Empty is a zero-length frame, as captured', () => {
    const payload = toBinary(ResponseSchema, create(ResponseSchema, { payload: new Uint8Array(0) }));
    expect(payload.length).toBe(0);
    expect(toHex(encodeFrame({ streamId: 5, type: MessageType.response, flags: 0, payload }))).toBe('00000000' + '00000005' + '02' + '00');
  });

  it('an error Response carries google.rpc.Status{code, message} in field 1 and no payload', () => {
    const msg = 'container not created: not found';
    expectBytes(
      ResponseSchema,
      { status: create(StatusSchema, { code: 5, message: msg }) },
      ld('0a', `08 05 ${ld('12', ascii(msg))}`),
    );
  });

  it('a Request frame: service, method, payload, timeout_nano, metadata; header length/stream BE, type 1, flags 0', () => {
    const request = create(RequestSchema, {
      service: 'containerd.task.v2.Task',
      method: 'State',
      payload: hex(ld('0a', ascii('c1'))),
      timeoutNano: 2_000_000_000n,
      metadata: keyValuesFromMetadata({ 'Containerd-Namespace-Ttrpc': 'default' }),
    });
    const body = [
      ld('0a', ascii('containerd.task.v2.Task')),
      ld('12', ascii('State')),
      ld('1a', ld('0a', ascii('c1'))),
      '20 80 a8 d6 b9 07', // 2e9 ns
      ld('2a', `${ld('0a', ascii('containerd-namespace-ttrpc'))} ${ld('12', ascii('default'))}`),
    ].join(' ');
    const payload = toBinary(RequestSchema, request);
    expect(toHex(payload)).toBe(toHex(hex(body)));
    const frame = encodeFrame({ streamId: 3, type: MessageType.request, flags: 0, payload });
    expect(toHex(frame.subarray(0, 10))).toBe(payload.length.toString(16).padStart(8, '0') + '00000003' + '01' + '00');
  });

  it('a Forward of TaskOOM: envelope timestamp, namespace, topic /tasks/oom, Any with the bare type URL', () => {
    const req = forwardRequestFor('default', TaskOOMSchema, { containerId: 'c1' }, create(TimestampSchema, { seconds: 1700000000n, nanos: 5 }));
    const event = [ld('0a', ascii('containerd.events.TaskOOM')), ld('12', ld('0a', ascii('c1')))].join(' ');
    const envelope = [ld('0a', '08 80 e2 cf aa 06 10 05'), ld('12', ascii('default')), ld('1a', ascii('/tasks/oom')), ld('22', event)].join(' ');
    expectBytes(ForwardRequestSchema, req, ld('0a', envelope));
  });

  it('TaskExit: id equals container_id for the init; exited_at always set', () => {
    expectBytes(
      TaskExitSchema,
      { containerId: 'c1', id: 'c1', pid: 9, exitStatus: 137, exitedAt: create(TimestampSchema, { seconds: 1n }) },
      [ld('0a', ascii('c1')), ld('12', ascii('c1')), '18 09', '20 89 01', ld('2a', '08 01')].join(' '),
    );
  });
});
