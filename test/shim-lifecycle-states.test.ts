/**
 * The process state machine (shims/outrigger-v2/process/lifecycle.ts), checked over arbitrary
 * event orders: whatever containerd and the reaper throw at a process, an exit is recorded at
 * most once and only from created or running, a started process's exit always follows its
 * start, nothing happens after delete, and a running process cannot be deleted.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { goZeroTimestamp } from '../src/api/timestamp.ts';
import { exitStatusOf, initialState, LifecycleError, statusOf, TaskStatus, transition } from '../shims/outrigger-v2/process/lifecycle.ts';
import type { ProcessEvent, ProcessState } from '../shims/outrigger-v2/process/lifecycle.ts';

const exitEvent = (status: number): ProcessEvent => ({ kind: 'exit', exit: { status, exitedAt: goZeroTimestamp() } });
const eventArb: fc.Arbitrary<ProcessEvent> = fc.oneof(
  fc.integer({ min: 1, max: 4_000_000 }).map((pid): ProcessEvent => ({ kind: 'start', pid })),
  fc.integer({ min: 0, max: 255 }).map(exitEvent),
  fc.constant<ProcessEvent>({ kind: 'delete' }),
);

describe('process lifecycle', () => {
  it('accepted event sequences obey containerd’s ordering rules', () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 12 }), fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined }), (events, pid) => {
        let state: ProcessState = initialState(pid);
        const accepted: ProcessEvent['kind'][] = [];
        for (const e of events) {
          try {
            state = transition(state, e);
            accepted.push(e.kind);
          } catch (err) {
            expect(err).toBeInstanceOf(LifecycleError);
          }
        }
        // at most one start, one exit, one delete, in that relative order when present
        for (const k of ['start', 'exit', 'delete'] as const) expect(accepted.filter((a) => a === k).length).toBeLessThanOrEqual(1);
        const at = (k: string) => accepted.indexOf(k as ProcessEvent['kind']);
        if (at('start') >= 0 && at('exit') >= 0) expect(at('start')).toBeLessThan(at('exit'));
        if (at('delete') >= 0) expect(at('delete')).toBe(accepted.length - 1);
        // deleting needs a process that is not running
        if (at('delete') >= 0 && at('start') >= 0) expect(at('exit')).toBeGreaterThanOrEqual(0);
        if (state.kind === 'stopped') expect(state.started).toBe(at('start') >= 0);
      }),
    );
  });

  it('refuses with the runc shim’s words', () => {
    const running = transition(initialState(5), { kind: 'start', pid: 5 });
    expect(() => transition(running, { kind: 'start', pid: 5 })).toThrow('cannot start a running process');
    expect(() => transition(running, { kind: 'delete' })).toThrow('cannot delete a running process');
    const stopped = transition(running, exitEvent(1));
    expect(() => transition(stopped, { kind: 'start', pid: 5 })).toThrow('cannot start a stopped process');
    expect(() => transition(stopped, exitEvent(2))).toThrow('process has already exited');
    const deleted = transition(stopped, { kind: 'delete' });
    expect(() => transition(deleted, { kind: 'delete' })).toThrow('cannot delete a deleted process');
  });

  it('reports containerd status numbers and Go exit statuses', () => {
    expect(statusOf(initialState(1))).toBe(TaskStatus.created);
    expect(statusOf(transition(initialState(1), { kind: 'start', pid: 1 }))).toBe(TaskStatus.running);
    expect(statusOf(transition(initialState(1), exitEvent(0)))).toBe(TaskStatus.stopped);
    expect(exitStatusOf({ state: 'exited', code: 7 })).toBe(7);
    expect(exitStatusOf({ state: 'signaled', signal: 9 })).toBe(137);
    expect(exitStatusOf({ state: 'gone' })).toBe(255);
  });
});
