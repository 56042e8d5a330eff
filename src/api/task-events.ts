/**
 * The eleven containerd task event messages with their topics (task-api.md §4) and the
 * Envelope/ForwardRequest a shim sends to `containerd.services.events.ttrpc.v1.Events/Forward`
 * (§5). containerd validates the envelope: namespace and every topic component must be valid
 * identifiers and the timestamp must be set, so these helpers always set it.
 */
import { create } from '@bufbuild/protobuf';
import type { DescMessage, MessageInitShape } from '@bufbuild/protobuf';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import {
  TaskCheckpointedSchema,
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskOOMSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
} from './gen/containerd/events/task_pb.ts';
import { EnvelopeSchema, ForwardRequestSchema } from './gen/containerd/services/events/ttrpc/v1/events_pb.ts';
import type { ForwardRequest } from './gen/containerd/services/events/ttrpc/v1/events_pb.ts';
import { packAny } from './typeurl.ts';
import { timestampNow } from './timestamp.ts';

/** Wire name of the forwarding service on containerd's ttrpc socket (same in 1.6 and 2.x). */
export const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';
export const FORWARD_METHOD = 'Forward';
/** ttrpc metadata key carrying the containerd namespace. */
export const NAMESPACE_METADATA_KEY = 'containerd-namespace-ttrpc';

/** Topic of each event a shim publishes. TaskIO is only nested in TaskCreate and has no topic. */
export const TASK_EVENT_TOPICS: ReadonlyMap<string, string> = new Map([
  [TaskCreateSchema.typeName, '/tasks/create'],
  [TaskStartSchema.typeName, '/tasks/start'],
  [TaskDeleteSchema.typeName, '/tasks/delete'],
  [TaskExitSchema.typeName, '/tasks/exit'],
  [TaskOOMSchema.typeName, '/tasks/oom'],
  [TaskExecAddedSchema.typeName, '/tasks/exec-added'],
  [TaskExecStartedSchema.typeName, '/tasks/exec-started'],
  [TaskPausedSchema.typeName, '/tasks/paused'],
  [TaskResumedSchema.typeName, '/tasks/resumed'],
  [TaskCheckpointedSchema.typeName, '/tasks/checkpointed'],
]);

export function topicOf(schema: DescMessage): string {
  const topic = TASK_EVENT_TOPICS.get(schema.typeName);
  if (topic === undefined) throw new Error(`${schema.typeName} is not a containerd task event with a topic`);
  return topic;
}

/** containerd's identifier rule (identifiers.Validate): alphanumerics separated by single . _ -, ≤ 76 chars. */
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;

export function isValidIdentifier(s: string): boolean {
  return s.length > 0 && s.length <= 76 && IDENTIFIER.test(s);
}

/** A ForwardRequest for one task event, timestamped now unless told otherwise. */
export function forwardRequestFor<Desc extends DescMessage>(
  namespace: string,
  schema: Desc,
  event: MessageInitShape<Desc>,
  timestamp: Timestamp = timestampNow(),
): ForwardRequest {
  if (!isValidIdentifier(namespace)) throw new Error(`namespace "${namespace}" is not a valid containerd identifier`);
  return create(ForwardRequestSchema, {
    envelope: create(EnvelopeSchema, {
      timestamp,
      namespace,
      topic: topicOf(schema),
      event: packAny(schema, event),
    }),
  });
}
