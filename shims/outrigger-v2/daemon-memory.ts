/**
 * Keeping an idle shim small. Most of a Node shim's memory is private: the V8 heap and the
 * malloc heap, not the shared executable (node-sea.md §2.5). What start-up grew stays resident
 * unless asked back, because an idle process triggers no garbage collection. Measured on the
 * idle daemon (docs/shim-grouping.md, "Memory"):
 * - V8 grows the young generation while the service's code loads and never shrinks it; a
 *   growth factor of 1 keeps it at its start size (set at run time: the SEA takes no V8 flags
 *   from the command line or NODE_OPTIONS, and the flags a code cache would refuse stay unset);
 * - once the shim has been quiet for a moment, one memory-reducing full collection and glibc's
 *   malloc_trim give back what loading and the last burst of requests left behind, and the
 *   executable's pages that start-up touched leave the shim's page tables (they stay in the page
 *   cache and come back on the next touch: ../../src/sys/drop-file-pages.ts).
 * Nothing here runs per request: creating or deleting a task re-arms one timer (refresh(), no
 * allocation), and the trim runs when that timer fires.
 */
import v8 from 'node:v8';
import { dropExecutablePages } from '../../src/sys/drop-file-pages.ts';
import { mallocTrim } from '../../src/sys/malloc-trim.ts';

/** Quiet time after the last create/delete before the heap is trimmed. */
export const TRIM_AFTER_QUIET_MS = 2_000;

type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;
let gc: GcFunction | undefined;

function fullGc(): GcFunction {
  if (gc === undefined) {
    // --expose-gc set at run time puts gc() on contexts made afterwards.
    v8.setFlagsFromString('--expose-gc');
    // node:vm loads here, at the first trim, not while the daemon gets ready (≈ 1 ms).
    gc = process.getBuiltinModule('node:vm').runInNewContext('gc') as GcFunction;
  }
  return gc;
}

/**
 * One memory-reducing collection, malloc_trim, then the executable's pages. The pages are dropped
 * once before the collection too: reading /proc/self/smaps makes garbage that the collection
 * then takes, and the collection's own code faults back only the pages it runs.
 */
export function trimNow(): void {
  dropExecutablePages();
  fullGc()({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  mallocTrim();
  dropExecutablePages();
}

/**
 * Trims once `quietMs` after the last `activity()` (and once after start-up). The timer does
 * not keep the process alive.
 */
export class IdleTrimmer {
  readonly #timer: NodeJS.Timeout;
  #closed = false;
  trims = 0;

  constructor(quietMs: number = TRIM_AFTER_QUIET_MS) {
    this.#timer = setTimeout(() => {
      this.trims++;
      trimNow();
    }, quietMs);
    this.#timer.unref();
  }

  activity(): void {
    if (!this.#closed) this.#timer.refresh();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}
