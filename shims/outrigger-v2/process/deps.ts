/** What a container process needs from the shim around it. */
import type { ChildReaper } from '../../../src/sys/child-reaper.ts';
import type { EventPublisher } from '../events/publisher.ts';
import type { Logger } from '../log.ts';
import type { OciRuntime } from '../runtime/oci-runtime.ts';

export interface ProcessDeps {
  readonly runtime: OciRuntime;
  readonly reaper: ChildReaper;
  readonly events: EventPublisher;
  readonly log: Logger;
}
