/**
 * The schema against the reference tables (task-api.md, shim-protocol.md): field numbers, names,
 * types and packages, read back from the descriptors protobuf-es built from our .proto files,
 * so a typo in a .proto cannot slip through. The expected strings are transcribed from the
 * reference's tables. Also: Task v2 and v3 are identical but for the package.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DescField, DescMessage } from '@bufbuild/protobuf';
import { ScalarType } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import * as events from '../src/api/gen/containerd/events/task_pb.ts';
import * as runc from '../src/api/gen/containerd/runc/v1/oci_pb.ts';
import * as bootstrap from '../src/api/gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts';
import * as forward from '../src/api/gen/containerd/services/events/ttrpc/v1/events_pb.ts';
import * as v2 from '../src/api/gen/containerd/task/v2/shim_pb.ts';
import * as v3 from '../src/api/gen/containerd/task/v3/shim_pb.ts';
import { EnvelopeSchema as TypesEnvelopeSchema } from '../src/api/gen/containerd/types/event_pb.ts';
import { MountSchema } from '../src/api/gen/containerd/types/mount_pb.ts';
import { MetricSchema } from '../src/api/gen/containerd/types/metrics_pb.ts';
import { ProcessInfoSchema, Status } from '../src/api/gen/containerd/types/task/task_pb.ts';
import { StatusSchema } from '../src/api/gen/google/rpc/status_pb.ts';
import * as cg1 from '../src/api/gen/io/containerd/cgroups/v1/metrics_pb.ts';
import * as cg2 from '../src/api/gen/io/containerd/cgroups/v2/metrics_pb.ts';
import { OptionsSchema as RuntimeOptionsSchema } from '../src/api/gen/runtimeoptions/v1/api_pb.ts';
import { KeyValueSchema, RequestSchema, ResponseSchema, StringListSchema } from '../src/api/gen/ttrpc/request_pb.ts';

const scalarNames: Record<number, string> = {
  [ScalarType.STRING]: 'string',
  [ScalarType.BOOL]: 'bool',
  [ScalarType.BYTES]: 'bytes',
  [ScalarType.UINT32]: 'uint32',
  [ScalarType.INT32]: 'int32',
  [ScalarType.UINT64]: 'uint64',
  [ScalarType.INT64]: 'int64',
  [ScalarType.DOUBLE]: 'double',
};

function typeOf(f: DescField): string {
  switch (f.fieldKind) {
    case 'scalar':
      return scalarNames[f.scalar]!;
    case 'enum':
      return f.enum.typeName;
    case 'message':
      return f.message.typeName;
    case 'list':
      return `repeated ${f.listKind === 'scalar' ? scalarNames[f.scalar]! : f.listKind === 'enum' ? f.enum.typeName : f.message.typeName}`;
    case 'map':
      return `map<${scalarNames[f.mapKey]!},${f.mapKind === 'scalar' ? scalarNames[f.scalar]! : 'message'}>`;
  }
}

/** "1 id string; 2 exec_id string" in field-number order. */
function table(schema: DescMessage): string {
  return [...schema.fields]
    .sort((a, b) => a.number - b.number)
    .map((f) => `${f.number} ${f.name} ${typeOf(f)}`)
    .join('; ');
}

const TS = 'google.protobuf.Timestamp';
const ANY = 'google.protobuf.Any';

describe('Task service (task-api.md §1)', () => {
  it('has the seventeen RPCs with their request and response types', () => {
    const rpcs = v2.Task.methods.map((m) => `${m.name}(${m.input.name}) ${m.output.typeName}`);
    expect(rpcs).toEqual([
      'State(StateRequest) containerd.task.v2.StateResponse',
      'Create(CreateTaskRequest) containerd.task.v2.CreateTaskResponse',
      'Start(StartRequest) containerd.task.v2.StartResponse',
      'Delete(DeleteRequest) containerd.task.v2.DeleteResponse',
      'Pids(PidsRequest) containerd.task.v2.PidsResponse',
      'Pause(PauseRequest) google.protobuf.Empty',
      'Resume(ResumeRequest) google.protobuf.Empty',
      'Checkpoint(CheckpointTaskRequest) google.protobuf.Empty',
      'Kill(KillRequest) google.protobuf.Empty',
      'Exec(ExecProcessRequest) google.protobuf.Empty',
      'ResizePty(ResizePtyRequest) google.protobuf.Empty',
      'CloseIO(CloseIORequest) google.protobuf.Empty',
      'Update(UpdateTaskRequest) google.protobuf.Empty',
      'Wait(WaitRequest) containerd.task.v2.WaitResponse',
      'Stats(StatsRequest) containerd.task.v2.StatsResponse',
      'Connect(ConnectRequest) containerd.task.v2.ConnectResponse',
      'Shutdown(ShutdownRequest) google.protobuf.Empty',
    ]);
    expect(v2.Task.typeName).toBe('containerd.task.v2.Task');
    expect(v3.Task.typeName).toBe('containerd.task.v3.Task');
    expect(v2.Task.methods.every((m) => m.methodKind === 'unary')).toBe(true);
  });

  it('messages match the reference field tables', () => {
    const expected: [DescMessage, string][] = [
      [v2.CreateTaskRequestSchema, `1 id string; 2 bundle string; 3 rootfs repeated containerd.types.Mount; 4 terminal bool; 5 stdin string; 6 stdout string; 7 stderr string; 8 checkpoint string; 9 parent_checkpoint string; 10 options ${ANY}`],
      [v2.CreateTaskResponseSchema, '1 pid uint32'],
      [v2.DeleteRequestSchema, '1 id string; 2 exec_id string'],
      [v2.DeleteResponseSchema, `1 pid uint32; 2 exit_status uint32; 3 exited_at ${TS}`],
      [v2.ExecProcessRequestSchema, `1 id string; 2 exec_id string; 3 terminal bool; 4 stdin string; 5 stdout string; 6 stderr string; 7 spec ${ANY}`],
      [v2.ExecProcessResponseSchema, ''],
      [v2.ResizePtyRequestSchema, '1 id string; 2 exec_id string; 3 width uint32; 4 height uint32'],
      [v2.StateRequestSchema, '1 id string; 2 exec_id string'],
      [v2.StateResponseSchema, `1 id string; 2 bundle string; 3 pid uint32; 4 status containerd.v1.types.Status; 5 stdin string; 6 stdout string; 7 stderr string; 8 terminal bool; 9 exit_status uint32; 10 exited_at ${TS}; 11 exec_id string`],
      [v2.KillRequestSchema, '1 id string; 2 exec_id string; 3 signal uint32; 4 all bool'],
      [v2.CloseIORequestSchema, '1 id string; 2 exec_id string; 3 stdin bool'],
      [v2.PidsRequestSchema, '1 id string'],
      [v2.PidsResponseSchema, '1 processes repeated containerd.v1.types.ProcessInfo'],
      [v2.CheckpointTaskRequestSchema, `1 id string; 2 path string; 3 options ${ANY}`],
      [v2.UpdateTaskRequestSchema, `1 id string; 2 resources ${ANY}; 3 annotations map<string,string>`],
      [v2.StartRequestSchema, '1 id string; 2 exec_id string'],
      [v2.StartResponseSchema, '1 pid uint32'],
      [v2.WaitRequestSchema, '1 id string; 2 exec_id string'],
      [v2.WaitResponseSchema, `1 exit_status uint32; 2 exited_at ${TS}`],
      [v2.StatsRequestSchema, '1 id string'],
      [v2.StatsResponseSchema, `1 stats ${ANY}`],
      [v2.ConnectRequestSchema, '1 id string'],
      [v2.ConnectResponseSchema, '1 shim_pid uint32; 2 task_pid uint32; 3 version string'],
      [v2.ShutdownRequestSchema, '1 id string; 2 now bool'],
      [v2.PauseRequestSchema, '1 id string'],
      [v2.ResumeRequestSchema, '1 id string'],
    ];
    for (const [schema, fields] of expected) expect(`${schema.typeName}: ${table(schema)}`).toBe(`${schema.typeName}: ${fields}`);
  });

  it('v3 is v2 with another package: same .proto text but the package and header, same field tables', () => {
    const dir = path.resolve(import.meta.dirname, '../src/api/proto/containerd/task');
    const body = (v: string) =>
      fs
        .readFileSync(path.join(dir, v, 'shim.proto'), 'utf8')
        .split('\n')
        .filter((l) => !l.startsWith('//') && !l.startsWith('package '))
        .join('\n');
    expect(body('v3')).toBe(body('v2'));
    const v3ByName = new Map(v3.file_containerd_task_v3_shim.messages.map((m) => [m.name, m]));
    expect(v3ByName.size).toBe(v2.file_containerd_task_v2_shim.messages.length);
    for (const m of v2.file_containerd_task_v2_shim.messages) {
      const twin = v3ByName.get(m.name);
      expect(twin, m.name).toBeDefined();
      expect(table(twin!).replaceAll('containerd.task.v3.', 'containerd.task.v2.')).toBe(table(m));
    }
  });
});

describe('supporting types (task-api.md §2, §3, §8)', () => {
  it('Mount, Status enum, ProcessInfo, Metric', () => {
    expect(table(MountSchema)).toBe('1 type string; 2 source string; 3 target string; 4 options repeated string');
    expect(Status).toEqual({ UNKNOWN: 0, CREATED: 1, RUNNING: 2, STOPPED: 3, PAUSED: 4, PAUSING: 5 });
    expect(table(ProcessInfoSchema)).toBe(`1 pid uint32; 2 info ${ANY}`);
    expect(ProcessInfoSchema.typeName).toBe('containerd.v1.types.ProcessInfo');
    expect(table(MetricSchema)).toBe(`1 timestamp ${TS}; 2 id string; 3 data ${ANY}`);
  });

  it('runc Options, CheckpointOptions, ProcessDetails and runtimeoptions.v1.Options', () => {
    expect(runc.OptionsSchema.typeName).toBe('containerd.runc.v1.Options');
    expect(table(runc.OptionsSchema)).toBe(
      '1 no_pivot_root bool; 2 no_new_keyring bool; 3 shim_cgroup string; 4 io_uid uint32; 5 io_gid uint32; 6 binary_name string; 7 root string; 8 criu_path string; 9 systemd_cgroup bool; 10 criu_image_path string; 11 criu_work_path string; 12 task_api_address string; 13 task_api_version uint32',
    );
    expect(table(runc.CheckpointOptionsSchema)).toBe(
      '1 exit bool; 2 open_tcp bool; 3 external_unix_sockets bool; 4 terminal bool; 5 file_locks bool; 6 empty_namespaces repeated string; 7 cgroups_mode string; 8 image_path string; 9 work_path string; 10 parent_path string',
    );
    expect(runc.ProcessDetailsSchema.typeName).toBe('containerd.runc.v1.ProcessDetails');
    expect(table(runc.ProcessDetailsSchema)).toBe('1 exec_id string');
    expect(RuntimeOptionsSchema.typeName).toBe('runtimeoptions.v1.Options');
    expect(table(RuntimeOptionsSchema)).toBe('1 type_url string; 2 config_path string; 3 config_body bytes');
  });

  it('ttrpc Request/Response/KeyValue/StringList and google.rpc.Status', () => {
    expect(table(RequestSchema)).toBe('1 service string; 2 method string; 3 payload bytes; 4 timeout_nano int64; 5 metadata repeated ttrpc.KeyValue');
    expect(table(ResponseSchema)).toBe('1 status google.rpc.Status; 2 payload bytes');
    expect(table(KeyValueSchema)).toBe('1 key string; 2 value string');
    expect(table(StringListSchema)).toBe('1 list repeated string');
    expect(table(StatusSchema)).toBe(`1 code int32; 2 message string; 3 details repeated ${ANY}`);
  });
});

describe('events (task-api.md §4, §5)', () => {
  it('the eleven task event messages', () => {
    const expected: [DescMessage, string][] = [
      [events.TaskCreateSchema, '1 container_id string; 2 bundle string; 3 rootfs repeated containerd.types.Mount; 4 io containerd.events.TaskIO; 5 checkpoint string; 6 pid uint32'],
      [events.TaskStartSchema, '1 container_id string; 2 pid uint32'],
      [events.TaskDeleteSchema, `1 container_id string; 2 pid uint32; 3 exit_status uint32; 4 exited_at ${TS}; 5 id string`],
      [events.TaskIOSchema, '1 stdin string; 2 stdout string; 3 stderr string; 4 terminal bool'],
      [events.TaskExitSchema, `1 container_id string; 2 id string; 3 pid uint32; 4 exit_status uint32; 5 exited_at ${TS}`],
      [events.TaskOOMSchema, '1 container_id string'],
      [events.TaskExecAddedSchema, '1 container_id string; 2 exec_id string'],
      [events.TaskExecStartedSchema, '1 container_id string; 2 exec_id string; 3 pid uint32'],
      [events.TaskPausedSchema, '1 container_id string'],
      [events.TaskResumedSchema, '1 container_id string'],
      [events.TaskCheckpointedSchema, '1 container_id string; 2 checkpoint string'],
    ];
    expect(events.file_containerd_events_task.messages.length).toBe(11);
    for (const [schema, fields] of expected) {
      expect(schema.typeName.startsWith('containerd.events.Task')).toBe(true);
      expect(`${schema.typeName}: ${table(schema)}`).toBe(`${schema.typeName}: ${fields}`);
    }
  });

  it('Events/Forward, ForwardRequest and both Envelope names', () => {
    expect(forward.Events.typeName).toBe('containerd.services.events.ttrpc.v1.Events');
    expect(forward.Events.methods.map((m) => `${m.name}(${m.input.typeName}) ${m.output.typeName}`)).toEqual([
      'Forward(containerd.services.events.ttrpc.v1.ForwardRequest) google.protobuf.Empty',
    ]);
    expect(table(forward.ForwardRequestSchema)).toBe('1 envelope containerd.services.events.ttrpc.v1.Envelope');
    const envelope = `1 timestamp ${TS}; 2 namespace string; 3 topic string; 4 event ${ANY}`;
    expect(table(forward.EnvelopeSchema)).toBe(envelope);
    expect(TypesEnvelopeSchema.typeName).toBe('containerd.types.Envelope');
    expect(table(TypesEnvelopeSchema)).toBe(envelope);
  });
});

describe('cgroup metrics (task-api.md §6)', () => {
  it('v1: type URL, top-level numbers and the fields CRI reads', () => {
    expect(cg1.MetricsSchema.typeName).toBe('io.containerd.cgroups.v1.Metrics');
    expect(table(cg1.MetricsSchema)).toBe(
      '1 hugetlb repeated io.containerd.cgroups.v1.HugetlbStat; 2 pids io.containerd.cgroups.v1.PidsStat; 3 cpu io.containerd.cgroups.v1.CPUStat; 4 memory io.containerd.cgroups.v1.MemoryStat; 5 blkio io.containerd.cgroups.v1.BlkIOStat; 9 memory_oom_control io.containerd.cgroups.v1.MemoryOomControl',
    );
    expect(table(cg1.CPUUsageSchema)).toBe('1 total uint64; 2 kernel uint64; 3 user uint64; 4 per_cpu repeated uint64');
    expect(table(cg1.ThrottleSchema)).toBe('1 periods uint64; 2 throttled_periods uint64; 3 throttled_time uint64');
    expect(table(cg1.MemoryEntrySchema)).toBe('1 limit uint64; 2 usage uint64; 3 max uint64; 4 failcnt uint64');
    const mem = new Map(cg1.MemoryStatSchema.fields.map((f) => [f.number, f.name]));
    expect([mem.get(1), mem.get(2), mem.get(19), mem.get(26), mem.get(27), mem.get(30), mem.get(33), mem.get(34), mem.get(35), mem.get(36)]).toEqual([
      'cache', 'rss', 'total_rss', 'total_pg_fault', 'total_pg_maj_fault', 'total_inactive_file', 'usage', 'swap', 'kernel', 'kernel_tcp',
    ]);
    expect(cg1.MemoryStatSchema.fields.filter((f) => f.number <= 32).every((f) => typeOf(f) === 'uint64')).toBe(true);
  });

  it('v2: type URL, no field 3, flat memory usage and µs CPU', () => {
    expect(cg2.MetricsSchema.typeName).toBe('io.containerd.cgroups.v2.Metrics');
    expect(table(cg2.MetricsSchema)).toBe(
      '1 pids io.containerd.cgroups.v2.PidsStat; 2 cpu io.containerd.cgroups.v2.CPUStat; 4 memory io.containerd.cgroups.v2.MemoryStat; 6 io io.containerd.cgroups.v2.IOStat; 7 hugetlb repeated io.containerd.cgroups.v2.HugeTlbStat; 8 memory_events io.containerd.cgroups.v2.MemoryEvents',
    );
    expect(table(cg2.CPUStatSchema)).toBe('1 usage_usec uint64; 2 user_usec uint64; 3 system_usec uint64; 4 nr_periods uint64; 5 nr_throttled uint64; 6 throttled_usec uint64');
    const mem = new Map(cg2.MemoryStatSchema.fields.map((f) => [f.number, f.name]));
    expect([mem.get(1), mem.get(2), mem.get(13), mem.get(18), mem.get(19), mem.get(32), mem.get(33), mem.get(34), mem.get(35)]).toEqual([
      'anon', 'file', 'inactive_file', 'pgfault', 'pgmajfault', 'usage', 'usage_limit', 'swap_usage', 'swap_limit',
    ]);
    expect(table(cg2.MemoryEventsSchema)).toBe('1 low uint64; 2 high uint64; 3 max uint64; 4 oom uint64; 5 oom_kill uint64');
    expect(table(cg2.IOEntrySchema)).toBe('1 major uint64; 2 minor uint64; 3 rbytes uint64; 4 wbytes uint64; 5 rios uint64; 6 wios uint64');
    expect(table(cg2.HugeTlbStatSchema)).toBe('1 current uint64; 2 max uint64; 3 pagesize string');
  });
});

describe('2.3 bootstrap messages (task-api.md §9)', () => {
  it('BootstrapParams, Extension, BootstrapResult and LogLevel', () => {
    expect(table(bootstrap.BootstrapParamsSchema)).toBe(
      '1 instance_id string; 2 namespace string; 3 log_level containerd.runtime.bootstrap.v1.LogLevel; 4 containerd_version string; 5 containerd_ttrpc_address string; 6 containerd_grpc_address string; 7 containerd_binary string; 8 extensions repeated containerd.runtime.bootstrap.v1.Extension; 9 socket_dir string',
    );
    expect(bootstrap.BootstrapParamsSchema.field.socketDir.proto.proto3Optional).toBe(true);
    expect(table(bootstrap.ExtensionSchema)).toBe(`1 value ${ANY}`);
    expect(table(bootstrap.BootstrapResultSchema)).toBe(
      '1 version int32; 2 address string; 3 protocol string; 4 capabilities repeated containerd.runtime.bootstrap.v1.Capability; 5 metadata map<string,string>',
    );
    expect(Object.values(bootstrap.LogLevel).sort((a, b) => a - b)).toEqual([-8, -4, 0, 4, 8, 10, 12]);
  });
});
