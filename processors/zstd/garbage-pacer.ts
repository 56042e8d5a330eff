/**
 * Keeps peak memory flat when input arrives in fresh Buffers: the process.stdin fallback for
 * non-blocking pipes and pass-through (io.ts). The main paths reuse their buffers and make no
 * garbage; this is for the rest. V8 frees a dead Buffer's memory only when a collection finds
 * it, and with a tiny JS heap it waits until ~64 MB of such external memory has piled up.
 * Measured with the zlib Transform stream (fresh buffers everywhere) on a 718 MB layer: peak
 * anonymous memory 98 MB without pacing, 59 MB with a young-generation collection every 16 MiB,
 * at the same speed. Every 4 MiB was worse (buffers still in flight survive two scavenges, get
 * promoted and then wait for a full GC); full collections every 8 MiB held 45 MB but cost ~70%
 * more time. `--max-semi-space-size=1` or `=4` changed nothing (157 and 156 MB peak RSS).
 *
 * `gc` is exposed at run time through v8.setFlagsFromString, not through execArgv: a V8 flag in
 * the SEA's execArgv changes the flag hash and makes V8 reject the embedded code cache
 * (../shared/reference/node-sea.md §2.6).
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type Collect = (options?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let collect: Collect | undefined;

function collector(): Collect {
  if (collect) return collect;
  v8.setFlagsFromString('--expose-gc');
  collect = vm.runInNewContext('gc') as Collect;
  return collect;
}

export class GarbagePacer {
  private readonly every: number;
  private sinceLast = 0;
  /** `every`: bytes allocated between collections; 0 turns pacing off. */
  constructor(every: number) {
    this.every = every;
  }
  /** Reports `bytes` of new buffers; collects when enough have passed. */
  allocated(bytes: number): void {
    if (this.every === 0) return;
    this.sinceLast += bytes;
    if (this.sinceLast < this.every) return;
    this.sinceLast = 0;
    collector()({ type: 'minor' });
  }
}
