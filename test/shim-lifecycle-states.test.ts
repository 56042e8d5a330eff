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

  it('pause and resume: only a running process pauses, only a paused one resumes, with the runc shim’s words', () => {
    const created = initialState(5);
    expect(() => transition(created, { kind: 'pause' })).toThrow('cannot pause task in created state');
    expect(() => transition(created, { kind: 'resume' })).toThrow('cannot resume task in created state');
    const running = transition(created, { kind: 'start', pid: 5 });
    expect(() => transition(running, { kind: 'resume' })).toThrow('cannot resume a running process');
    const paused = transition(running, { kind: 'pause' });
    expect(paused).toEqual({ kind: 'paused', pid: 5 });
    expect(statusOf(paused)).toBe(TaskStatus.paused);
    expect(() => transition(paused, { kind: 'pause' })).toThrow('cannot pause a paused container');
    expect(() => transition(paused, { kind: 'delete' })).toThrow('cannot delete a paused process');
    expect(() => transition(paused, { kind: 'start', pid: 5 })).toThrow('cannot start a paused process');
    expect(transition(paused, { kind: 'resume' })).toEqual(running);
    // A frozen process can still die (SIGKILL, OOM): it stops like a running one.
    const stopped = transition(paused, exitEvent(137));
    expect(stopped).toMatchObject({ kind: 'stopped', started: true });
    expect(() => transition(stopped, { kind: 'pause' })).toThrow('cannot pause a stopped container');
    expect(() => transition(stopped, { kind: 'resume' })).toThrow('cannot resume a stopped container');
  });

  it('with pause and resume in the mix, an exit is still recorded once, after the start, and delete stays last', () => {
    const withPause = fc.oneof(eventArb, fc.constantFrom<ProcessEvent>({ kind: 'pause' }, { kind: 'resume' }));
    fc.assert(
      fc.property(fc.array(withPause, { maxLength: 16 }), (events) => {
        let state: ProcessState = initialState(1);
        const accepted: ProcessEvent['kind'][] = [];
        for (const e of events) {
          try {
            state = transition(state, e);
            accepted.push(e.kind);
          } catch (err) {
            expect(err).toBeInstanceOf(LifecycleError);
          }
        }
        expect(accepted.filter((k) => k === 'exit').length).toBeLessThanOrEqual(1);
        const pauses = accepted.filter((k) => k === 'pause').length;
        const resumes = accepted.filter((k) => k === 'resume').length;
        // pauses and resumes alternate, starting with a pause, all between start and exit
        expect(pauses - resumes === 0 || pauses - resumes === 1).toBe(true);
        const firstPause = accepted.indexOf('pause');
        if (firstPause >= 0) expect(accepted.indexOf('start')).toBeLessThan(firstPause);
        if (accepted.includes('delete')) expect(accepted.at(-1)).toBe('delete');
        if (accepted.includes('delete')) expect(accepted[accepted.length - 2]).not.toBe('pause');
      }),
    );
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
