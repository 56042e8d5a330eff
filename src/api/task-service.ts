/**
 * The Task service under both wire names. containerd 1.6 (and 2.x for shims that print a bare
 * address) calls `containerd.task.v2.Task`; 2.x calls `containerd.task.v3.Task` for shims that
 * announce version 3 (task-api.md §1.1). The messages are byte-identical, so one implementation
 * typed against the v2 descriptors serves both.
 */
import { Task } from './gen/containerd/task/v2/shim_pb.ts';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { TtrpcServer } from '../ttrpc/server.ts';
import { serviceHandlers } from '../ttrpc/typed.ts';
import type { ServiceImpl } from '../ttrpc/typed.ts';

export const TASK_SERVICE_V2 = 'containerd.task.v2.Task';
export const TASK_SERVICE_V3 = 'containerd.task.v3.Task';

type MethodsOf<D> = D extends GenService<infer S extends GenServiceMethods> ? S : never;
export type TaskMethods = MethodsOf<typeof Task>;
export type TaskServiceImpl = ServiceImpl<TaskMethods>;

/** Serves `impl` as both Task service versions; RPCs it leaves out answer Unimplemented. */
export function registerTaskService(server: TtrpcServer, impl: Partial<TaskServiceImpl>): void {
  const handlers = serviceHandlers(Task, impl);
  server.register(TASK_SERVICE_V2, handlers);
  server.register(TASK_SERVICE_V3, handlers);
}
