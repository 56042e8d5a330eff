/**
 * Out-of-memory kills in a container's cgroup (shim-protocol.md §5.3):
 * - cgroup v1: an eventfd registered for memory.oom_control through cgroup.event_control; the
 *   kernel adds 1 per OOM in the cgroup, before it kills the victim.
 * - cgroup v2: memory.events' `oom_kill` counter going up (watched with inotify).
 *
 * `check()` looks now. The shim calls it just before it publishes the exit of any process of
 * the container, so a TaskOOM always precedes the TaskExit of the process the OOM killer took.
 * libuv cannot wait on an eventfd it did not create, so v1 watches are also polled on one
 * shared, unref'd timer; that catches OOM kills of processes the shim does not track (a
 * child of the init), where ordering against an exit does not arise.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createEventFd, readEventCounter } from '../../../src/sys/eventfd.ts';
import { parseFlatKeyed } from './flat-keyed.ts';
import type { CgroupLocation } from './location.ts';

const POLL_MS = 1000;

export interface OomWatch {
  /** Reports (through the callback) OOM kills since the last look; true if there were any. */
  check(): boolean;
  close(): void;
}

const polled = new Set<OomWatch>();
let timer: NodeJS.Timeout | undefined;

function poll(watch: OomWatch, on: boolean): void {
  if (on) polled.add(watch);
  else polled.delete(watch);
  if (polled.size > 0 && timer === undefined) {
    timer = setInterval(() => {
      for (const w of polled) w.check();
    }, POLL_MS);
    timer.unref();
  } else if (polled.size === 0 && timer !== undefined) {
    clearInterval(timer);
    timer = undefined;
  }
}

class V1OomWatch implements OomWatch {
  readonly #fd: number;
  readonly #onOom: () => void;
  #closed = false;

  constructor(memoryDir: string, onOom: () => void) {
    this.#onOom = onOom;
    const efd = createEventFd();
    let control: number | undefined;
    try {
      control = fs.openSync(path.join(memoryDir, 'memory.oom_control'), fs.constants.O_RDONLY);
      fs.writeFileSync(path.join(memoryDir, 'cgroup.event_control'), `${efd} ${control}`);
    } catch (err) {
      fs.closeSync(efd);
      throw new Error(`OOM watch on ${memoryDir}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    } finally {
      // The kernel holds its own reference once registered.
      if (control !== undefined) fs.closeSync(control);
    }
    this.#fd = efd;
    poll(this, true);
  }

  check(): boolean {
    if (this.#closed) return false;
    const count = readEventCounter(this.#fd);
    if (count === null) return false;
    this.#onOom();
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    poll(this, false);
    fs.closeSync(this.#fd);
  }
}

/** The oom_kill counter of a v2 memory.events text (0 when the line is absent). */
export function oomKillCount(memoryEvents: string): bigint {
  return parseFlatKeyed(memoryEvents, 'memory.events').get('oom_kill') ?? 0n;
}

class V2OomWatch implements OomWatch {
  readonly #file: string;
  readonly #onOom: () => void;
  readonly #watcher: fs.FSWatcher | undefined;
  #seen: bigint;
  #closed = false;

  constructor(dir: string, onOom: () => void) {
    this.#file = path.join(dir, 'memory.events');
    this.#onOom = onOom;
    this.#seen = this.#count() ?? 0n;
    try {
      this.#watcher = fs.watch(this.#file, { persistent: false }, () => this.check());
      this.#watcher.on('error', () => this.#watcher?.close());
    } catch {
      this.#watcher = undefined; // the exit-time check still runs
    }
  }

  #count(): bigint | undefined {
    try {
      return oomKillCount(fs.readFileSync(this.#file, 'utf8'));
    } catch {
      return undefined; // cgroup gone
    }
  }

  check(): boolean {
    if (this.#closed) return false;
    const now = this.#count();
    if (now === undefined || now <= this.#seen) return false;
    this.#seen = now;
    this.#onOom();
    return true;
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.close();
  }
}

/** Starts watching; undefined when the cgroup has no memory controller to watch. */
export function watchOom(where: CgroupLocation, onOom: () => void): OomWatch | undefined {
  if (where.version === 2) return fs.existsSync(path.join(where.dir, 'memory.events')) ? new V2OomWatch(where.dir, onOom) : undefined;
  const memory = where.dirs.get('memory');
  return memory === undefined ? undefined : new V1OomWatch(memory, onOom);
}
