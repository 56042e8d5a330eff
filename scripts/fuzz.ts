/**
 * `npm run fuzz`: the fuzz properties of test/fuzz-*.test.ts with many more cases than CI runs,
 * their counts logged to docs/reliability/fuzz.jsonl and tabulated in docs/reliability.md.
 *
 *   npm run fuzz [-- --scale 20] [--seed N] [--only ttrpc|compressed|estargz|containerd-config]
 *
 * --scale multiplies every property's CI case count (default 20); the seed defaults to the CI
 * seed, so a long run starts with the CI cases. Exit status is vitest's.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { writeReliabilityDoc } from './reliability-table.ts';

const repo = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: { scale: { type: 'string', default: '20' }, seed: { type: 'string' }, only: { type: 'string' } },
  strict: true,
});
const scale = Number(values.scale);
if (!Number.isFinite(scale) || scale <= 0) throw new Error('--scale must be a positive number');
const files = fs
  .readdirSync(path.join(repo, 'test'))
  .filter((f) => /^fuzz-.*\.test\.ts$/.test(f) && (values.only === undefined || f.includes(values.only)))
  .map((f) => `test/${f}`);
if (files.length === 0) throw new Error(`no fuzz test matches --only ${values.only}`);
const logFile = path.join(repo, 'docs/reliability/fuzz.jsonl');
fs.mkdirSync(path.dirname(logFile), { recursive: true });
// A partial run (--only) keeps the other properties' last counts.
const kept = values.only === undefined || !fs.existsSync(logFile)
  ? []
  : fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l && !files.some((f) => l.includes(`"file":"${f}"`)));
fs.writeFileSync(logFile, kept.map((l) => `${l}\n`).join(''));
const env = { ...process.env, OUTRIGGER_FUZZ_SCALE: String(scale), OUTRIGGER_RELIABILITY_LOG: logFile, ...(values.seed ? { OUTRIGGER_FUZZ_SEED: values.seed } : {}) };
const r = spawnSync(path.join(repo, 'node_modules/.bin/vitest'), ['run', '--project', 'unit', ...files], { cwd: repo, env, stdio: 'inherit' });
writeReliabilityDoc(repo);
process.exit(r.status ?? 1);
