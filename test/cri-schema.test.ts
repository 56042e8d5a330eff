/**
 * Our subset of the CRI v1 proto (src/api/proto/runtime/v1/api.proto) against upstream's field
 * tables, transcribed from kubernetes/cri-api pkg/apis/runtime/v1/api.proto: every field we
 * declare must have upstream's number, name and type (we may leave fields out, never change
 * one), every enum value its number, and every RPC its upstream name and message types. A wrong
 * number would not fail to compile; containerd would silently read another field.
 */
import type { DescField } from '@bufbuild/protobuf';
import { ScalarType } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { file_runtime_v1_api, ImageService, RuntimeService } from '../src/api/gen/runtime/v1/api_pb.ts';

const MAP = 'map<string,string>';
const R = 'runtime.v1.';

/** Upstream messages (all their fields, ours or not): "number name type". */
const UPSTREAM: Record<string, string[]> = {
  VersionRequest: ['1 version string'],
  VersionResponse: ['1 version string', '2 runtime_name string', '3 runtime_version string', '4 runtime_api_version string'],
  NamespaceOption: [`1 network ${R}NamespaceMode`, `2 pid ${R}NamespaceMode`, `3 ipc ${R}NamespaceMode`, '4 target_id string', `5 userns_options ${R}UserNamespace`],
  Int64Value: ['1 value int64'],
  LinuxSandboxSecurityContext: [
    `1 namespace_options ${R}NamespaceOption`, `2 selinux_options ${R}SELinuxOption`, `3 run_as_user ${R}Int64Value`,
    '4 readonly_rootfs bool', '5 supplemental_groups repeated int64', '6 privileged bool', '7 seccomp_profile_path string',
    `8 run_as_group ${R}Int64Value`, `9 seccomp ${R}SecurityProfile`, `10 apparmor ${R}SecurityProfile`,
    `11 supplemental_groups_policy ${R}SupplementalGroupsPolicy`,
  ],
  LinuxPodSandboxConfig: [
    '1 cgroup_parent string', `2 security_context ${R}LinuxSandboxSecurityContext`, `3 sysctls ${MAP}`,
    `4 overhead ${R}LinuxContainerResources`, `5 resources ${R}LinuxContainerResources`,
  ],
  PodSandboxMetadata: ['1 name string', '2 uid string', '3 namespace string', '4 attempt uint32'],
  PodSandboxConfig: [
    `1 metadata ${R}PodSandboxMetadata`, '2 hostname string', '3 log_directory string', `4 dns_config ${R}DNSConfig`,
    `5 port_mappings repeated ${R}PortMapping`, `6 labels ${MAP}`, `7 annotations ${MAP}`, `8 linux ${R}LinuxPodSandboxConfig`,
    `9 windows ${R}WindowsPodSandboxConfig`,
  ],
  RunPodSandboxRequest: [`1 config ${R}PodSandboxConfig`, '2 runtime_handler string'],
  RunPodSandboxResponse: ['1 pod_sandbox_id string'],
  StopPodSandboxRequest: ['1 pod_sandbox_id string'],
  StopPodSandboxResponse: [],
  RemovePodSandboxRequest: ['1 pod_sandbox_id string'],
  RemovePodSandboxResponse: [],
  PodSandboxStatusRequest: ['1 pod_sandbox_id string', '2 verbose bool'],
  PodSandboxStatus: [
    '1 id string', `2 metadata ${R}PodSandboxMetadata`, `3 state ${R}PodSandboxState`, '4 created_at int64',
    `5 network ${R}PodSandboxNetworkStatus`, `6 linux ${R}LinuxPodSandboxStatus`, `7 labels ${MAP}`, `8 annotations ${MAP}`,
    '9 runtime_handler string',
  ],
  PodSandboxStatusResponse: [`1 status ${R}PodSandboxStatus`, `2 info ${MAP}`, `3 containers_statuses repeated ${R}ContainerStatus`, '4 timestamp int64'],
  PodSandboxStateValue: [`1 state ${R}PodSandboxState`],
  PodSandboxFilter: ['1 id string', `2 state ${R}PodSandboxStateValue`, `3 label_selector ${MAP}`],
  ListPodSandboxRequest: [`1 filter ${R}PodSandboxFilter`],
  PodSandbox: [
    '1 id string', `2 metadata ${R}PodSandboxMetadata`, `3 state ${R}PodSandboxState`, '4 created_at int64',
    `5 labels ${MAP}`, `6 annotations ${MAP}`, '7 runtime_handler string',
  ],
  ListPodSandboxResponse: [`1 items repeated ${R}PodSandbox`],
  ImageSpec: ['1 image string', `2 annotations ${MAP}`, '18 user_specified_image string', '19 runtime_handler string'],
  KeyValue: ['1 key string', '2 value string'],
  LinuxContainerResources: [
    '1 cpu_period int64', '2 cpu_quota int64', '3 cpu_shares int64', '4 memory_limit_in_bytes int64', '5 oom_score_adj int64',
    '6 cpuset_cpus string', '7 cpuset_mems string', `8 hugepage_limits repeated ${R}HugepageLimit`, `9 unified ${MAP}`,
    '10 memory_swap_limit_in_bytes int64',
  ],
  LinuxContainerSecurityContext: [
    `1 capabilities ${R}Capability`, '2 privileged bool', `3 namespace_options ${R}NamespaceOption`, `4 selinux_options ${R}SELinuxOption`,
    `5 run_as_user ${R}Int64Value`, '6 run_as_username string', '7 readonly_rootfs bool', '8 supplemental_groups repeated int64',
    '9 apparmor_profile string', '10 seccomp_profile_path string', '11 no_new_privs bool', `12 run_as_group ${R}Int64Value`,
    '13 masked_paths repeated string', '14 readonly_paths repeated string', `15 seccomp ${R}SecurityProfile`,
    `16 apparmor ${R}SecurityProfile`, `17 supplemental_groups_policy ${R}SupplementalGroupsPolicy`,
  ],
  LinuxContainerConfig: [`1 resources ${R}LinuxContainerResources`, `2 security_context ${R}LinuxContainerSecurityContext`],
  ContainerMetadata: ['1 name string', '2 attempt uint32'],
  ContainerConfig: [
    `1 metadata ${R}ContainerMetadata`, `2 image ${R}ImageSpec`, '3 command repeated string', '4 args repeated string',
    '5 working_dir string', `6 envs repeated ${R}KeyValue`, `7 mounts repeated ${R}Mount`, `8 devices repeated ${R}Device`,
    `9 labels ${MAP}`, `10 annotations ${MAP}`, '11 log_path string', '12 stdin bool', '13 stdin_once bool', '14 tty bool',
    `15 linux ${R}LinuxContainerConfig`, `16 windows ${R}WindowsContainerConfig`, `17 CDI_devices repeated ${R}CDIDevice`,
  ],
  CreateContainerRequest: ['1 pod_sandbox_id string', `2 config ${R}ContainerConfig`, `3 sandbox_config ${R}PodSandboxConfig`],
  CreateContainerResponse: ['1 container_id string'],
  StartContainerRequest: ['1 container_id string'],
  StartContainerResponse: [],
  StopContainerRequest: ['1 container_id string', '2 timeout int64'],
  StopContainerResponse: [],
  RemoveContainerRequest: ['1 container_id string'],
  RemoveContainerResponse: [],
  ContainerStateValue: [`1 state ${R}ContainerState`],
  ContainerFilter: ['1 id string', `2 state ${R}ContainerStateValue`, '3 pod_sandbox_id string', `4 label_selector ${MAP}`],
  ListContainersRequest: [`1 filter ${R}ContainerFilter`],
  Container: [
    '1 id string', '2 pod_sandbox_id string', `3 metadata ${R}ContainerMetadata`, `4 image ${R}ImageSpec`, '5 image_ref string',
    `6 state ${R}ContainerState`, '7 created_at int64', `8 labels ${MAP}`, `9 annotations ${MAP}`, '10 image_id string',
  ],
  ListContainersResponse: [`1 containers repeated ${R}Container`],
  ContainerStatusRequest: ['1 container_id string', '2 verbose bool'],
  ContainerStatus: [
    '1 id string', `2 metadata ${R}ContainerMetadata`, `3 state ${R}ContainerState`, '4 created_at int64', '5 started_at int64',
    '6 finished_at int64', '7 exit_code int32', `8 image ${R}ImageSpec`, '9 image_ref string', '10 reason string',
    '11 message string', `12 labels ${MAP}`, `13 annotations ${MAP}`, `14 mounts repeated ${R}Mount`, '15 log_path string',
    `16 resources ${R}ContainerResources`, '17 image_id string', `18 user ${R}ContainerUser`, '19 image_source string',
  ],
  ContainerStatusResponse: [`1 status ${R}ContainerStatus`, `2 info ${MAP}`],
  ExecSyncRequest: ['1 container_id string', '2 cmd repeated string', '3 timeout int64'],
  ExecSyncResponse: ['1 stdout bytes', '2 stderr bytes', '3 exit_code int32'],
  RuntimeCondition: ['1 type string', '2 status bool', '3 reason string', '4 message string'],
  RuntimeStatus: [`1 conditions repeated ${R}RuntimeCondition`],
  StatusRequest: ['1 verbose bool'],
  StatusResponse: [`1 status ${R}RuntimeStatus`, `2 info ${MAP}`, `3 runtime_handlers repeated ${R}RuntimeHandler`, `4 features ${R}RuntimeFeatures`],
  ImageFilter: [`1 image ${R}ImageSpec`],
  ListImagesRequest: [`1 filter ${R}ImageFilter`],
  Image: [
    '1 id string', '2 repo_tags repeated string', '3 repo_digests repeated string', '4 size uint64', `5 uid ${R}Int64Value`,
    '6 username string', `7 spec ${R}ImageSpec`, '8 pinned bool', '9 image_source string',
  ],
  ListImagesResponse: [`1 images repeated ${R}Image`],
  ImageStatusRequest: [`1 image ${R}ImageSpec`, '2 verbose bool'],
  ImageStatusResponse: [`1 image ${R}Image`, `2 info ${MAP}`],
};

const UPSTREAM_ENUMS: Record<string, string[]> = {
  NamespaceMode: ['POD 0', 'CONTAINER 1', 'NODE 2', 'TARGET 3'],
  PodSandboxState: ['SANDBOX_READY 0', 'SANDBOX_NOTREADY 1'],
  ContainerState: ['CONTAINER_CREATED 0', 'CONTAINER_RUNNING 1', 'CONTAINER_EXITED 2', 'CONTAINER_UNKNOWN 3'],
};

/** Upstream RPC names per service (every RPC takes <Name>Request and returns <Name>Response). */
const UPSTREAM_RPCS: Record<string, string[]> = {
  'runtime.v1.RuntimeService': [
    'Version', 'RunPodSandbox', 'StopPodSandbox', 'RemovePodSandbox', 'PodSandboxStatus', 'ListPodSandbox', 'CreateContainer',
    'StartContainer', 'StopContainer', 'RemoveContainer', 'ListContainers', 'ContainerStatus', 'UpdateContainerResources',
    'ReopenContainerLog', 'ExecSync', 'Exec', 'Attach', 'PortForward', 'ContainerStats', 'ListContainerStats', 'PodSandboxStats',
    'ListPodSandboxStats', 'UpdateRuntimeConfig', 'Status', 'CheckpointContainer', 'ListMetricDescriptors',
    'ListPodSandboxMetrics', 'RuntimeConfig',
  ],
  'runtime.v1.ImageService': ['ListImages', 'ImageStatus', 'PullImage', 'RemoveImage', 'ImageFsInfo'],
};

const scalarNames: Partial<Record<ScalarType, string>> = {
  [ScalarType.STRING]: 'string',
  [ScalarType.BOOL]: 'bool',
  [ScalarType.BYTES]: 'bytes',
  [ScalarType.UINT32]: 'uint32',
  [ScalarType.INT32]: 'int32',
  [ScalarType.UINT64]: 'uint64',
  [ScalarType.INT64]: 'int64',
};

function typeOf(f: DescField): string {
  switch (f.fieldKind) {
    case 'scalar':
      return scalarNames[f.scalar] ?? `scalar(${f.scalar})`;
    case 'enum':
      return f.enum.typeName;
    case 'message':
      return f.message.typeName;
    case 'list':
      return `repeated ${f.listKind === 'scalar' ? (scalarNames[f.scalar] ?? '?') : f.listKind === 'enum' ? f.enum.typeName : f.message.typeName}`;
    case 'map':
      return `map<${scalarNames[f.mapKey] ?? '?'},${f.mapKind === 'scalar' ? (scalarNames[f.scalar] ?? '?') : f.mapKind}>`;
  }
}

describe('CRI v1 subset matches kubernetes/cri-api', () => {
  it('declares no message upstream lacks, and each field with upstream number, name and type', () => {
    expect(file_runtime_v1_api.proto.package).toBe('runtime.v1');
    const mismatches: string[] = [];
    for (const message of file_runtime_v1_api.messages) {
      const upstream = UPSTREAM[message.name];
      if (upstream === undefined) {
        mismatches.push(`${message.name}: no such upstream message`);
        continue;
      }
      for (const f of message.fields) {
        const ours = `${f.number} ${f.name} ${typeOf(f)}`;
        if (!upstream.includes(ours)) mismatches.push(`${message.name}: ${ours} (upstream: ${upstream.join('; ')})`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('carries every field the e2e test relies on', () => {
    const byName = new Map(file_runtime_v1_api.messages.map((m) => [m.name, m]));
    const fields = (name: string) => byName.get(name)?.fields.map((f) => f.name) ?? [];
    expect(fields('ContainerStatus')).toEqual(expect.arrayContaining(['state', 'exit_code', 'reason', 'log_path']));
    expect(fields('ContainerConfig')).toEqual(expect.arrayContaining(['command', 'log_path', 'linux']));
    expect(fields('LinuxContainerResources')).toContain('memory_limit_in_bytes');
    expect(fields('RunPodSandboxRequest')).toEqual(['config', 'runtime_handler']);
  });

  it('enum values have upstream numbers', () => {
    for (const e of file_runtime_v1_api.enums) {
      expect(e.values.map((v) => `${v.name} ${v.number}`), e.name).toEqual(UPSTREAM_ENUMS[e.name]);
    }
  });

  it('RPCs are upstream ones, unary, with <Name>Request / <Name>Response', () => {
    for (const service of [RuntimeService, ImageService]) {
      for (const m of service.methods) {
        expect(UPSTREAM_RPCS[service.typeName], service.typeName).toContain(m.name);
        expect(m.methodKind).toBe('unary');
        expect(`${m.input.typeName} ${m.output.typeName}`).toBe(`runtime.v1.${m.name}Request runtime.v1.${m.name}Response`);
      }
    }
  });
});
