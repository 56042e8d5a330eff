/**
 * Start-up of SEA builds that differ only in useCodeCache and minify (scripts/build.ts knobs),
 * each built into a temporary directory so dist/ is never touched.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TimedBenchmark, Variant } from '../model.ts';
import { formatSize } from '../report-markdown.ts';
import { PINNED_NODE, ROOT } from '../paths.ts';

const buildRoot = path.join(os.tmpdir(), `outrigger-bench-sea-${process.pid}`);

function buildVariant(label: string, id: string, codeCache: boolean, minify: boolean): Variant {
  const out = path.join(buildRoot, id);
  return {
    label,
    argv: [path.join(out, 'outrigger'), '--version'],
    display: `$TMPDIR/${id}/outrigger --version`,
    setup: () => {
      try {
        execFileSync(PINNED_NODE, [path.join(ROOT, 'scripts/build.ts')], {
          cwd: ROOT,
          env: { ...process.env, OUTRIGGER_BUILD_OUT: out, OUTRIGGER_SEA_CODE_CACHE: codeCache ? '1' : '0', OUTRIGGER_MINIFY: minify ? '1' : '0' },
          stdio: ['ignore', 'ignore', 'pipe'],
          encoding: 'utf8',
        });
      } catch (err) {
        const stderr = String((err as { stderr?: string }).stderr ?? '').trim().split('\n').slice(0, 8).join('\n');
        throw new Error(`build of "${label}" into ${out} failed (does \`npm run build\` pass?):\n${stderr}`);
      }
      // Measure a copy: a file fresh from --build-sea maps ~35 MB more file pages at start-up than
      // the same bytes copied, which is how a binary gets installed.
      fs.copyFileSync(path.join(out, 'bin/outrigger'), path.join(out, 'outrigger'));
      fs.chmodSync(path.join(out, 'outrigger'), 0o755);
      const bundle = fs.statSync(path.join(out, 'outrigger.cjs')).size;
      const sea = fs.statSync(path.join(out, 'outrigger')).size;
      return `OUTRIGGER_SEA_CODE_CACHE=${codeCache ? 1 : 0} OUTRIGGER_MINIFY=${minify ? 1 : 0}; bundle ${(bundle / 1e3).toFixed(1)} kB, SEA ${formatSize(sea)} (${sea.toLocaleString('en-US')} B)`;
    },
    teardown: () => {
      fs.rmSync(out, { recursive: true, force: true });
      if (fs.existsSync(buildRoot) && fs.readdirSync(buildRoot).length === 0) fs.rmdirSync(buildRoot);
    },
  };
}

export const seaSettings: TimedBenchmark = {
  kind: 'timed',
  name: 'sea-settings',
  title: 'SEA build settings',
  what:
    'Start-up (`--version`) of four SEA builds of the same source: code cache on/off × minified bundle on/off. ' +
    'Everything else is the default of scripts/build.ts (stripped node, `execArgvExtension: "none"`, ' +
    '`execArgv: ["--no-warnings=ExperimentalWarning"]`). Ours is the current default; the peer is the plain ' +
    'Node SEA (no code cache, no minify). Each build is made by `OUTRIGGER_BUILD_OUT=$TMPDIR/… ' +
    'OUTRIGGER_SEA_CODE_CACHE=0|1 OUTRIGGER_MINIFY=0|1 node scripts/build.ts`, copied (as an install would; the ' +
    'file written by `--build-sea` itself starts with ~35 MB more resident file pages) and deleted afterwards.',
  env: { NODE_EXTRA_CA_CERTS: null },
  variants: [
    buildVariant('code cache + minify (default)', 'cc-min', true, true),
    buildVariant('code cache, not minified', 'cc-nomin', true, false),
    buildVariant('no code cache, minify', 'nocc-min', false, true),
    buildVariant('no code cache, not minified', 'nocc-nomin', false, false),
  ],
  ours: 'code cache + minify (default)',
  peer: 'no code cache, not minified',
  rounds: 200,
  quickRounds: 5,
  warmupRounds: 3,
};
