/**
 * Finding CRIU before a checkpoint or restore (shims/outrigger-v2/runtime/criu.ts): on PATH
 * or at CriuPath; its absence is a CriuMissingError (FailedPrecondition at the Task API) that
 * says where we looked.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CriuMissingError, findCriu } from '../shims/outrigger-v2/runtime/criu.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-find-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, mode: number): string {
  const p = path.join(dir, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, '#!/bin/sh\n', { mode });
  return p;
}

describe('findCriu', () => {
  it('finds the first executable criu on PATH', () => {
    file('a/criu', 0o644); // not executable: skipped
    const b = file('b/criu', 0o755);
    expect(findCriu({}, `${dir}/none:${dir}/a:${dir}/b`)).toBe(b);
  });

  it('without criu on PATH: CriuMissingError naming the PATH', () => {
    expect(() => findCriu({}, '/nonexistent-1:/nonexistent-2')).toThrow(CriuMissingError);
    expect(() => findCriu({}, '/nonexistent-1:/nonexistent-2')).toThrow('criu not found in PATH (/nonexistent-1:/nonexistent-2)');
    expect(() => findCriu({}, '')).toThrow('criu not found in PATH (empty)');
  });

  it('CriuPath wins over PATH and must be an executable file', () => {
    const mine = file('mine/criu-3', 0o755);
    expect(findCriu({ criuPath: mine }, '/nonexistent')).toBe(mine);
    expect(() => findCriu({ criuPath: path.join(dir, 'mine') }, `${dir}/b`)).toThrow(/CriuPath .*mine is not an executable file/);
    expect(() => findCriu({ criuPath: '/nonexistent/criu' }, `${dir}/b`)).toThrow(CriuMissingError);
  });

  it('this machine has CRIU installed (the e2e tests rely on it)', () => {
    expect(findCriu({})).toMatch(/\/criu$/);
  });
});
