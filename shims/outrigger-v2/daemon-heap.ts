/**
 * The V8 heap settings of the daemon (./daemon-memory.ts says why), apart from the idle trim so
 * the daemon sets them before it listens without loading the trim's native bindings: those load
 * after it serves (./serve-task-api.ts).
 */
import v8 from 'node:v8';

/** V8 flags that V8 reads while running, so setting them after start-up still counts. */
export const RUNTIME_HEAP_FLAGS = ['--semi-space-growth-factor=1'] as const;

/** First thing the daemon does, before it loads the service. */
export function tuneDaemonHeap(): void {
  for (const flag of RUNTIME_HEAP_FLAGS) v8.setFlagsFromString(flag);
}
