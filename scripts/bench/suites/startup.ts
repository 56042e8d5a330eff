import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TimedBenchmark, Variant } from '../model.ts';
import { BUNDLE, GO_SHIM, PINNED_NODE, SEA } from '../paths.ts';

// The SEA and bundle are measured from private copies: other work rebuilds dist/ at any time, and
// a copy also has the page-cache state of an installed binary (a binary fresh from --build-sea
// maps ~35 MB more file pages; see the sea-settings suite).
const snapshot = path.join(os.tmpdir(), `outrigger-bench-startup-${process.pid}`);
const sea = path.join(snapshot, 'outrigger');
const bundle = path.join(snapshot, 'outrigger.cjs');

function copyBuild(): string {
  for (const f of [SEA, BUNDLE]) if (!fs.existsSync(f)) throw new Error(`bench startup: ${f} is missing; run npm run build first`);
  fs.mkdirSync(snapshot, { recursive: true });
  fs.copyFileSync(SEA, sea);
  fs.chmodSync(sea, 0o755);
  fs.copyFileSync(BUNDLE, bundle);
  return `measured from a copy of dist/bin/outrigger (${fs.statSync(sea).size.toLocaleString('en-US')} B) taken at the start`;
}

// Our machines export NODE_EXTRA_CA_CERTS; Node 20 read it eagerly at start-up (+55 ms), so every
// row runs without it and one SEA row runs with it, to show that Node 26 does not pay for it.
const caCerts = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';

const variants: Variant[] = [
  {
    label: 'outrigger --version (SEA)',
    argv: [sea, '--version'],
    display: 'dist/bin/outrigger --version',
    setup: copyBuild,
    teardown: () => fs.rmSync(snapshot, { recursive: true, force: true }),
  },
  {
    label: 'SEA, NODE_EXTRA_CA_CERTS set',
    argv: [sea, '--version'],
    display: 'dist/bin/outrigger --version',
    env: { NODE_EXTRA_CA_CERTS: caCerts },
  },
  {
    label: 'node outrigger.cjs --version',
    argv: [PINNED_NODE, bundle, '--version'],
    display: 'node_modules/.bin/node dist/outrigger.cjs --version',
    note: 'the same bundle, run by the same Node without SEA',
  },
  { label: 'node -e 0', argv: [PINNED_NODE, '-e', '0'], note: 'the floor for any Node 26 program' },
  ...(fs.existsSync(GO_SHIM) ? [{ label: 'Go shim -v', argv: [GO_SHIM, '-v'], note: 'containerd-shim-runc-v2 from Debian containerd' }] : []),
  { label: '/bin/true', argv: ['/bin/true'], note: 'the floor of the measurement itself (spawn + GNU time)' },
];

export const startup: TimedBenchmark = {
  kind: 'timed',
  name: 'startup',
  title: 'Start-up',
  what:
    'Time from spawn to exit of a command that does nothing but start: our SEA printing its version, against ' +
    'Node 26 itself (`node -e 0`, the peer: no Node program can start faster), the same bundle run by plain ' +
    'node, the Go shim and `/bin/true`. Every row runs with `NODE_EXTRA_CA_CERTS` removed, except the one that sets it.',
  env: { NODE_EXTRA_CA_CERTS: null },
  variants,
  ours: 'outrigger --version (SEA)',
  peer: 'node -e 0',
  rounds: 200,
  quickRounds: 5,
  warmupRounds: 3,
};
