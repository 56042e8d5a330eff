/**
 * Every schema file we generate, as one registry: resolves services and methods by wire name
 * for the `ttrpc call` CLI, and Any payloads by their bare type URLs for JSON output.
 */
import { createRegistry } from '@bufbuild/protobuf';
import type { DescMethod, Registry } from '@bufbuild/protobuf';
import { file_containerd_events_task } from './gen/containerd/events/task_pb.ts';
import { file_containerd_runc_v1_oci } from './gen/containerd/runc/v1/oci_pb.ts';
import { file_containerd_runtime_bootstrap_v1_bootstrap } from './gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts';
import { file_containerd_services_events_ttrpc_v1_events } from './gen/containerd/services/events/ttrpc/v1/events_pb.ts';
import { file_containerd_task_v2_shim } from './gen/containerd/task/v2/shim_pb.ts';
import { file_containerd_task_v3_shim } from './gen/containerd/task/v3/shim_pb.ts';
import { file_containerd_types_event } from './gen/containerd/types/event_pb.ts';
import { file_containerd_types_metrics } from './gen/containerd/types/metrics_pb.ts';
import { file_io_containerd_cgroups_v1_metrics } from './gen/io/containerd/cgroups/v1/metrics_pb.ts';
import { file_io_containerd_cgroups_v2_metrics } from './gen/io/containerd/cgroups/v2/metrics_pb.ts';
import { file_runtimeoptions_v1_api } from './gen/runtimeoptions/v1/api_pb.ts';
import { file_ttrpc_request } from './gen/ttrpc/request_pb.ts';
import { file_google_rpc_status } from './gen/google/rpc/status_pb.ts';

let registry: Registry | undefined;

export function apiRegistry(): Registry {
  registry ??= createRegistry(
    file_containerd_events_task,
    file_containerd_runc_v1_oci,
    file_containerd_runtime_bootstrap_v1_bootstrap,
    file_containerd_services_events_ttrpc_v1_events,
    file_containerd_task_v2_shim,
    file_containerd_task_v3_shim,
    file_containerd_types_event,
    file_containerd_types_metrics,
    file_io_containerd_cgroups_v1_metrics,
    file_io_containerd_cgroups_v2_metrics,
    file_runtimeoptions_v1_api,
    file_ttrpc_request,
    file_google_rpc_status,
  );
  return registry;
}

/** The method `service/method` names, e.g. ("containerd.task.v2.Task", "State"). */
export function findMethod(service: string, method: string): DescMethod | undefined {
  return apiRegistry()
    .getService(service)
    ?.methods.find((m) => m.name === method);
}

export function serviceNames(): string[] {
  const names: string[] = [];
  for (const type of apiRegistry()) if (type.kind === 'service') names.push(type.typeName);
  return names.sort();
}
