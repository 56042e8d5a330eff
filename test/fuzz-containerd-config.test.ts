/**
 * config.toml merge inputs fuzzed: files assembled from adversarial fragments (our own tables
 * as dotted keys, inline tables and arrays of tables; headers with odd quoting and spacing;
 * multi-line strings that contain fake headers and our block markers; stray markers; CRLF, a
 * BOM, tabs, missing final newline) and plain random text. Invariants: merge either refuses
 * with a ConfigMergeError naming the file, or returns text that is valid TOML, declares our
 * runtime with our runtime_type, gives the original back byte for byte through unmerge (for a
 * file with our bare marker lines, which reads as merged before: its un-merged form), and is a
 * fixed point of a second merge. No other exception, no hang.
 */
import fc from 'fast-check';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { criRuntimesPath } from '../src/containerd-config/entries.ts';
import { BLOCK_BEGIN, BLOCK_END, ConfigMergeError, merge, type MergeOptions, REPLACED_PREFIX, unmerge } from '../src/containerd-config/merge.ts';
import { assertFuzz, fuzzTestTimeout } from './support/fuzz.ts';

const OPTS: MergeOptions = {
  prefix: '/usr/local',
  processors: ['zstd', 'gzip', 'imgcrypt'],
  runtimeName: 'outrigger',
  runtimeOptionsPath: '/usr/local/etc/outrigger/runtime-options.toml',
  containerdMajor: '1.7',
};

const FRAGMENTS: readonly string[] = [
  'version = 2',
  'version = 3',
  'version = 1',
  'version = "2"',
  'root = "/var/lib/containerd"',
  '[plugins."io.containerd.grpc.v1.cri".containerd]\n  default_runtime_name = "runc"',
  '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n  runtime_type = "io.containerd.runc.v2"',
  '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n  SystemdCgroup = true',
  '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]\nruntime_type = "io.containerd.runc.v2"',
  '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.outrigger]\nruntime_type = "something.else"',
  '[ plugins . "io.containerd.grpc.v1.cri" . containerd . runtimes . outrigger ]\nruntime_type = "x"',
  "[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.outrigger]",
  '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes]\noutrigger = { runtime_type = "inline" }',
  '[plugins."io.containerd.grpc.v1.cri".containerd]\nruntimes.outrigger.runtime_type = "dotted"',
  '[stream_processors]\n"io.containerd.outrigger.zstd.v1.tar.zstd" = { path = "/x" }',
  '[stream_processors."io.containerd.ocicrypt.decoder.v1.tar"]\naccepts = ["application/vnd.oci.image.layer.v1.tar+encrypted"]\nreturns = "application/vnd.oci.image.layer.v1.tar"\npath = "ctd-decoder"',
  '[stream_processors."io.containerd.outrigger.zstd.v1.tar.zstd"]\npath = "/old"',
  '[[stream_processors.list]]\nname = "a"',
  '[[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.outrigger]]',
  '[plugins]\n"io.containerd.grpc.v1.cri" = {}',
  'note = """\n[stream_processors."fake"]\npath = "in a string"\n"""',
  `note2 = '''\n${BLOCK_BEGIN}\n[plugins.fake]\n${BLOCK_END}\n'''`,
  `note3 = """\n${REPLACED_PREFIX}[plugins.inside]\n"""`,
  `# ${BLOCK_BEGIN}`,
  '# a comment [stream_processors]',
  '[plugins."io.containerd.grpc.v1.cri"] # trailing comment',
  '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\nendpoint = ["https://mirror"]',
  'key = "value with \\" escaped quote and [brackets]"',
  '',
  '\t',
];

/**
 * Our markers and prefix as bare lines: a file holding them is taken for one we merged before,
 * so only its un-merged form is given back (the exact-text invariant cannot apply).
 */
const BARE_MARKERS: readonly string[] = [BLOCK_BEGIN, BLOCK_END, `${REPLACED_PREFIX}[plugins.old]`, `${BLOCK_BEGIN}\n[plugins.x]\n${BLOCK_END}`];

const line = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...FRAGMENTS) },
  { weight: 1, arbitrary: fc.constantFrom(...BARE_MARKERS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);

const file = fc
  .record({
    lines: fc.array(line, { maxLength: 12 }),
    crlf: fc.boolean(),
    bom: fc.boolean(),
    finalNewline: fc.boolean(),
  })
  .map(({ lines, crlf, bom, finalNewline }) => {
    const eol = crlf ? '\r\n' : '\n';
    const body = lines.join('\n').replaceAll('\n', eol);
    const text = `${bom ? '\uFEFF' : ''}${body}${finalNewline && body !== '' ? eol : ''}`;
    return { text, bare: lines.some((l) => BARE_MARKERS.includes(l)) };
  });

function getPath(doc: unknown, keys: readonly string[]): unknown {
  let cur = doc;
  for (const k of keys) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

const outcomes = { merged: 0, refused: 0 };

function check({ text, bare }: { text: string; bare: boolean }): void {
  let r;
  try {
    r = merge(text, 'config.toml', OPTS);
  } catch (err) {
    expect(err, `merge threw something other than a ConfigMergeError: ${String(err)}`).toBeInstanceOf(ConfigMergeError);
    expect((err as Error).message.length).toBeGreaterThan(0);
    outcomes.refused++;
    return;
  }
  let doc: unknown;
  expect(() => (doc = parse(r.text)), `merged text is not valid TOML:\n${r.text}`).not.toThrow();
  expect(getPath(doc, [...criRuntimesPath(r.configVersion), 'outrigger', 'runtime_type'])).toBe('io.containerd.outrigger.v2');
  expect(unmerge(r.text), 'unmerge did not give back the original').toBe(bare ? unmerge(text) : text);
  expect(merge(r.text, 'config.toml', OPTS).text, 'second merge changed the text').toBe(r.text);
  outcomes.merged++;
}

describe('config.toml merge with adversarial inputs', () => {
  it('either a clear refusal or a valid, reversible, idempotent merge', async () => {
    await assertFuzz('containerd-config', 'merge inputs (fragments, markers, CRLF/BOM, random text)', [file], async (input) => check(input), { runs: 400, timeoutMs: 5_000 });
    // The generator must reach the merge itself, not only the parser's refusals.
    expect(outcomes.merged, JSON.stringify(outcomes)).toBeGreaterThan(outcomes.refused / 10);
  }, fuzzTestTimeout(400, 200));
});
