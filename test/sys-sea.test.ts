/**
 * The same src/sys scenarios, run inside the built single-executable binary: proves node:ffi
 * and the calls work in the SEA (its bundle, code cache and execArgv), not only under node.
 * Needs `npm run build` first (npm test does it).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const binary = path.resolve(import.meta.dirname, '../dist/bin/outrigger');

/** Every scenario the self-test must report; a missing one fails like a failed one. */
const expectedScenarios = [
  'subreaper',
  'process-name',
  'grandchild-sigkill',
  'grandchild-exit-42',
  'grandchild-reaped-by-parent',
  'child-process-exit-unaffected',
  'wait-refuses-wildcard-pids',
  'fd-passing',
  'winsize',
  'eventfd',
  'peer-credentials',
];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let run: Run;
let report: { ok: boolean; results: Array<{ name: string; ok: boolean; detail: string }> };

beforeAll(async () => {
  if (!fs.existsSync(binary)) {
    throw new Error(`${binary} is missing: run \`npm run build\` before this test (npm test builds it)`);
  }
  run = await new Promise<Run>((resolve, reject) => {
    execFile(binary, ['sys-selftest'], { timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
  report = JSON.parse(run.stdout) as typeof report;
}, 90_000);

describe('outrigger sys-selftest (inside the SEA)', () => {
  it('exits 0 with a clean stderr (no ExperimentalWarning from node:ffi)', () => {
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(report.ok).toBe(true);
  });

  it('reports exactly the expected scenarios', () => {
    expect(report.results.map((r) => r.name)).toEqual(expectedScenarios);
  });

  for (const name of expectedScenarios) {
    it(`passes scenario ${name}`, () => {
      const result = report.results.find((r) => r.name === name);
      expect(result, `scenario ${name} missing from the report`).toBeDefined();
      expect(result, result?.detail).toMatchObject({ name, ok: true });
    });
  }

  it('saw the real values: SIGKILL as signal 9, exit 42, our uid as the peer', () => {
    const detail = (name: string): string => report.results.find((r) => r.name === name)?.detail ?? '';
    expect(detail('grandchild-sigkill')).toContain('"signal":9,"signalName":"SIGKILL"');
    expect(detail('grandchild-exit-42')).toContain('{"state":"exited","code":42}');
    expect(detail('grandchild-reaped-by-parent')).toContain('{"state":"gone"}');
    expect(detail('child-process-exit-unaffected')).toContain('child_process exits [3,4,"SIGKILL"]');
    expect(detail('peer-credentials')).toContain(`"uid":${process.getuid!()}`);
  });

  it('is hidden from --help', async () => {
    const help = await new Promise<string>((resolve, reject) =>
      execFile(binary, ['--help'], (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    expect(help).toContain('Usage:');
    expect(help).not.toContain('sys-selftest');
  });
});
