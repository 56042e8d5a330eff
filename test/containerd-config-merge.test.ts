/**
 * The config.toml merge: our tables go in, everything else stays byte for byte, a second merge
 * changes nothing, and unmerge gives back the original. Property-tested over generated
 * real-world-shaped files (comments, config versions 2 and 3, existing stream processors and
 * runtimes, CRLF and missing final newlines) plus containerd 1.6's own `config default`.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { configSnippet, criRuntimesPath, type ProcessorName } from '../src/containerd-config/entries.ts';
import { BLOCK_BEGIN, ConfigMergeError, merge, type MergeOptions, unmerge } from '../src/containerd-config/merge.ts';
import { unifiedDiff } from '../src/containerd-config/unified-diff.ts';

const opts = (processors: ProcessorName[] = ['zstd', 'gzip', 'imgcrypt'], runtimeName = 'outrigger'): MergeOptions => ({
  prefix: '/usr/local',
  processors,
  runtimeName,
  runtimeOptionsPath: '/usr/local/etc/outrigger/runtime-options.toml',
});

type Doc = Record<string, unknown>;

/** Every leaf (path → value) of a parsed document, arrays of tables included by index. */
function leaves(doc: unknown, prefix: string[] = [], out = new Map<string, unknown>()): Map<string, unknown> {
  if (typeof doc === 'object' && doc !== null && !(doc instanceof Date) && !Array.isArray(doc)) {
    for (const [k, v] of Object.entries(doc as Doc)) leaves(v, [...prefix, k], out);
    return out;
  }
  if (Array.isArray(doc) && doc.some((v) => typeof v === 'object' && v !== null)) {
    doc.forEach((v, i) => leaves(v, [...prefix, String(i)], out));
    return out;
  }
  out.set(JSON.stringify(prefix), doc);
  return out;
}

function isOurs(pathJson: string, version: 2 | 3, ownedIds: string[], runtimeName: string): boolean {
  const p = JSON.parse(pathJson) as string[];
  if (p[0] === 'stream_processors' && ownedIds.includes(p[1]!)) return true;
  const rt = criRuntimesPath(version);
  return rt.every((s, i) => p[i] === s) && p[rt.length] === runtimeName;
}

const OWNED_IDS = [
  'io.containerd.outrigger.zstd.v1.tar.zstd',
  'io.containerd.outrigger.zstd.v1.tar.gzip',
  'io.containerd.outrigger.estargz.v1.tar.gzip',
  'io.containerd.ocicrypt.decoder.v1.tar.gzip',
  'io.containerd.ocicrypt.decoder.v1.tar',
];

/** Asserts the three merge properties for one file; returns the merged text. */
function checkMerge(original: string, o: MergeOptions, seen?: Set<string>): string {
  const r = merge(original, 'config.toml', o);
  if (seen) {
    seen.add(`v${r.configVersion}`);
    if (r.replaced.length > 0) seen.add('replaced');
    if (original.includes('\r\n')) seen.add('crlf');
    if (!original.endsWith('\n')) seen.add('no-final-newline');
    if (/runtimes\.runc\]/.test(r.text.slice(r.text.indexOf(BLOCK_BEGIN)))) seen.add('declared-runc');
  }
  // Uninstall restores the original byte for byte; a second merge is a no-op.
  expect(unmerge(r.text)).toBe(original);
  expect(merge(r.text, 'config.toml', o).text).toBe(r.text);
  // Every key outside our tables keeps its value; our tables are what we wrote.
  const before = leaves(parse(original));
  const after = leaves(parse(r.text));
  for (const [k, v] of before) {
    if (isOurs(k, r.configVersion, OWNED_IDS, o.runtimeName)) continue;
    expect(after.get(k), `key ${k}`).toEqual(v);
  }
  const rtPath = [...criRuntimesPath(r.configVersion), o.runtimeName, 'runtime_type'];
  expect(after.get(JSON.stringify(rtPath))).toBe('io.containerd.outrigger.v2');
  // Every line of the original (comments included) is still there, in order, unchanged unless it
  // belongs to a table we replaced (then it is kept commented out with the marker prefix).
  const mergedLines = r.text.split('\n');
  let at = 0;
  for (const line of original.split('\n')) {
    while (at < mergedLines.length && mergedLines[at] !== line && !mergedLines[at]!.endsWith(line)) at++;
    expect(at, `line ${JSON.stringify(line)} kept`).toBeLessThan(mergedLines.length);
    at++;
  }
  return r.text;
}

const containerdDefault = (): string => execFileSync('/usr/bin/containerd', ['config', 'default'], { encoding: 'utf8' });

describe('merge into real configs', () => {
  it("containerd 1.6's `config default` (which declares the ocicrypt processors and runc)", () => {
    const original = containerdDefault();
    const merged = checkMerge(original, opts());
    // Both ocicrypt tables of the default were replaced by ours, not duplicated.
    expect(merged.match(/^#~outrigger-replaced~ \s*\[stream_processors\."io\.containerd\.ocicrypt\.decoder\.v1\.tar(\.gzip)?"\]/gm)).toHaveLength(2);
    const doc = parse(merged) as Doc;
    const sp = doc.stream_processors as Record<string, Doc>;
    expect(sp['io.containerd.ocicrypt.decoder.v1.tar.gzip']!.path).toBe('/usr/local/bin/ctd-decoder');
    // runc was declared already, so we do not declare it again.
    expect(merged.slice(merged.indexOf(BLOCK_BEGIN))).not.toContain('runtimes.runc]');
    // containerd 1.6 itself loads the merged file and sees our entries.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ord-merge-'));
    try {
      fs.writeFileSync(path.join(dir, 'config.toml'), merged);
      const dump = execFileSync('/usr/bin/containerd', ['--config', path.join(dir, 'config.toml'), 'config', 'dump'], { encoding: 'utf8' });
      const dumped = parse(dump) as any;
      expect(dumped.plugins['io.containerd.grpc.v1.cri'].containerd.runtimes.outrigger.runtime_type).toBe('io.containerd.outrigger.v2');
      expect(dumped.stream_processors['io.containerd.outrigger.zstd.v1.tar.zstd'].path).toBe('/usr/local/bin/outrigger-zstd');
      expect(Object.keys(dumped.stream_processors).sort()).toEqual(
        ['io.containerd.ocicrypt.decoder.v1.tar', 'io.containerd.ocicrypt.decoder.v1.tar.gzip', 'io.containerd.outrigger.zstd.v1.tar.gzip', 'io.containerd.outrigger.zstd.v1.tar.zstd'],
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a config the private containerd harness writes: runc gets declared for CRI', () => {
    const original = 'version = 2\nroot = "/tmp/r"\n\n[plugins]\n  [plugins."io.containerd.internal.v1.opt"]\n    path = "/tmp/opt"\n';
    const merged = checkMerge(original, opts(['zstd']));
    const doc = parse(merged) as Doc;
    expect((doc as any).plugins['io.containerd.grpc.v1.cri'].containerd.runtimes.runc.runtime_type).toBe('io.containerd.runc.v2');
  });

  it('version 3 (containerd 2.x) uses the io.containerd.cri.v1.runtime plugin', () => {
    const original = 'version = 3\n# 2.x\n[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n';
    const r = merge(original, 'c', opts(['zstd']));
    expect(r.configVersion).toBe(3);
    expect(r.runcSystemdCgroup).toBe(true);
    expect(r.text).toContain('[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.outrigger]');
    expect(r.text).not.toContain('io.containerd.grpc.v1.cri');
    checkMerge(original, opts(['zstd']));
  });

  it("version 3 as containerd 2.x's `config default` writes it (literal-string keys) is matched by key, not spelling", () => {
    const original = [
      '# default containerd configuration file, generated via `containerd config default`',
      'version = 3',
      "root = '/var/lib/containerd'",
      '',
      '[plugins]',
      "  [plugins.'io.containerd.cri.v1.runtime']",
      "    cdi_spec_dirs = ['/etc/cdi', '/var/run/cdi']",
      "    [plugins.'io.containerd.cri.v1.runtime'.containerd]",
      "      default_runtime_name = 'runc'",
      "      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]",
      "        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]",
      "          runtime_type = 'io.containerd.runc.v2'",
      "          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]",
      '            SystemdCgroup = true',
      "        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.outrigger]",
      "          runtime_type = 'io.containerd.old.v1'",
      '',
      '[stream_processors]',
      "  [stream_processors.'io.containerd.ocicrypt.decoder.v1.tar']",
      "    accepts = ['application/vnd.oci.image.layer.v1.tar+encrypted']",
      "    returns = 'application/vnd.oci.image.layer.v1.tar'",
      "    path = 'ctd-decoder'",
      '',
    ].join('\n');
    const r = merge(original, 'c', opts(['zstd', 'imgcrypt']));
    expect(r.replaced).toEqual([
      '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.outrigger]',
      '[stream_processors."io.containerd.ocicrypt.decoder.v1.tar"]',
    ]);
    expect(r.runcSystemdCgroup).toBe(true);
    checkMerge(original, opts(['zstd', 'imgcrypt']));
  });

  it('an empty file gets a version line for the given containerd major', () => {
    const r = merge('', 'c', { ...opts(['zstd']), containerdMajor: '2.x' });
    expect((parse(r.text) as Doc).version).toBe(3);
    expect(unmerge(r.text)).toBe('');
  });

  it('refuses what it cannot edit safely, with the reason', () => {
    expect(() => merge('[plugins\n', 'bad.toml', opts())).toThrow(/bad\.toml: not valid TOML/);
    expect(() => merge('root = "/x"\n', 'v1.toml', opts())).toThrow(/config version 1/);
    expect(() => merge('version = 2\n[stream_processors]\n"io.containerd.outrigger.zstd.v1.tar.zstd" = { path = "x" }\n', 'inline.toml', opts(['zstd']))).toThrow(
      ConfigMergeError,
    );
    expect(() => merge('version = 2\n', 'c', opts(['gzip', 'estargz']))).toThrow(/at random/);
  });

  it('the snippet for each major parses and names the right CRI plugin', () => {
    for (const [major, plugin] of [['1.6', 'io.containerd.grpc.v1.cri'], ['1.7', 'io.containerd.grpc.v1.cri'], ['2.x', 'io.containerd.cri.v1.runtime']] as const) {
      const s = configSnippet({ major, prefix: '/usr/local', processors: ['zstd', 'gzip'], runtimeName: 'outrigger', runtimeOptionsPath: '/x.toml' });
      const doc = parse(s) as any;
      expect(doc.plugins[plugin].containerd.runtimes.outrigger.options.ConfigPath).toBe('/x.toml');
      expect(doc.stream_processors['io.containerd.outrigger.zstd.v1.tar.zstd'].path).toBe('/usr/local/bin/outrigger-zstd');
    }
  });
});

// ---- generated corpus ----

const ident = fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/);
const scalarText = fc.oneof(
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.integer().map(String),
  fc.boolean().map(String),
  fc.array(fc.stringMatching(/^[a-z./+-]{0,10}$/), { maxLength: 3 }).map((a) => JSON.stringify(a)),
);
const comment = fc.string({ maxLength: 30 }).map((s) => `# ${s.replace(/[\r\n\u0000-\u001f\u007f]/g, ' ')}`);
const indent = fc.constantFrom('', '  ', '    ', '\t');
const keyLine = fc.tuple(indent, ident, scalarText, fc.option(comment, { nil: undefined })).map(([i, k, v, c]) => `${i}${k} = ${v}${c ? ` ${c}` : ''}`);
const bodyLine = fc.oneof({ weight: 3, arbitrary: keyLine }, { weight: 1, arbitrary: comment }, { weight: 1, arbitrary: fc.constant('') });

function table(header: string): fc.Arbitrary<string[]> {
  return fc.tuple(indent, fc.uniqueArray(keyLine, { maxLength: 4, selector: (l) => l.trim().split(' ')[0] }), fc.array(fc.oneof(comment, fc.constant('')), { maxLength: 2 })).map(
    ([i, keys, extra]) => [`${i}${header}`, ...keys, ...extra],
  );
}

function processorTable(id: string): fc.Arbitrary<string[]> {
  return fc.tuple(indent, fc.option(comment, { nil: undefined })).map(([i, c]) => [
    ...(c ? [c] : []),
    `${i}[stream_processors."${id}"]`,
    `${i}  accepts = ["application/vnd.example+${id.length}"]`,
    `${i}  returns = "application/vnd.oci.image.layer.v1.tar"`,
    `${i}  path = "/usr/bin/${id.split('.').at(-1)}"`,
    `${i}  args = ["--x"]`,
  ]);
}

function runtimeTables(version: 2 | 3, name: string, withOptions: boolean): fc.Arbitrary<string[]> {
  const base = `[${criRuntimesPath(version).map((s) => (s.includes('.') ? `"${s}"` : s)).join('.')}.${name}]`;
  return fc.tuple(indent, fc.boolean()).map(([i, systemd]) => [
    `${i}${base}`,
    `${i}  runtime_type = "io.containerd.${name}.v2"`,
    ...(withOptions ? [`${i}${base.slice(0, -1)}.options]`, `${i}  SystemdCgroup = ${systemd}`] : []),
  ]);
}

const configFile = fc.constantFrom<2 | 3>(2, 3).chain((version) =>
  fc
    .tuple(
      fc.array(fc.oneof(comment, fc.constant('')), { maxLength: 3 }),
      fc.uniqueArray(ident.filter((n) => !['version', 'plugins', 'stream_processors', 'grpc', 'debug'].includes(n)), { maxLength: 3 }),
      scalarText,
      fc.array(fc.oneof(comment, fc.constant('')), { maxLength: 2 }),
      table('[grpc]'),
      fc.option(table('[debug]'), { nil: undefined }),
      fc.uniqueArray(fc.constantFrom(...OWNED_IDS, 'io.example.other.v1', 'io.containerd.ocicrypt.decoder.v1.tar.zstd'), { maxLength: 4 }),
      fc.uniqueArray(fc.constantFrom('runc', 'kata', 'outrigger', 'gvisor'), { maxLength: 3 }),
      fc.boolean(),
      fc.boolean(),
      fc.constantFrom('\n', '\r\n'),
      fc.constantFrom('', '\n', '\n\n'),
      fc.constantFrom('none', 'basic', 'literal'),
      fc.boolean(),
    )
    .chain(([lead, rootKeys, rootValue, midComments, grpc, debug, processorIds, runtimes, withOptions, spHeader, eol, ending, multiline, arrayTables]) =>
      fc
        .tuple(
          fc.tuple(...processorIds.map(processorTable)),
          fc.tuple(...runtimes.map((n) => runtimeTables(version, n, withOptions))),
        )
        .map(([processors, runtimeBlocks]) => {
          const lines = [
            ...lead,
            `version = ${version}`,
            ...rootKeys.map((k) => `${k} = ${rootValue}`),
            ...midComments,
            ...grpc,
            ...(debug ?? []),
            // Header-shaped lines inside multi-line strings are data, not tables (ours or not).
            ...(multiline === 'none'
              ? []
              : [
                  '[plugins."io.example.scripts.v1"]',
                  `  script = ${multiline === 'basic' ? '"""' : "'''"}`,
                  `[stream_processors."${OWNED_IDS[0]}"]`,
                  '  path = "not a key"',
                  `${multiline === 'basic' ? '"""' : "'''"}`,
                ]),
            ...(arrayTables ? ['[[plugins."io.example.hooks.v1".hook]]', '  name = "a"', '[[plugins."io.example.hooks.v1".hook]]', '  name = "b" # second'] : []),
            ...(spHeader ? ['[stream_processors]'] : []),
            ...processors.flat(),
            ...runtimeBlocks.flat(),
          ];
          return { version, text: lines.join(eol).replace(/\s+$/, '') + ending.replaceAll('\n', eol) };
        }),
    ),
);

describe('merge properties over generated configs', () => {
  it('keeps every unrelated key and comment; merge twice = once; unmerge restores bytes', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(
        configFile,
        fc.subarray<ProcessorName>(['zstd', 'gzip', 'imgcrypt']),
        fc.constantFrom('outrigger', 'kata', 'fast'),
        ({ text }, processors, runtimeName) => {
          checkMerge(text, opts(processors, runtimeName), seen);
        },
      ),
      { numRuns: 300 },
    );
    // The generator did reach the cases that matter.
    expect([...seen].sort()).toEqual(['crlf', 'declared-runc', 'no-final-newline', 'replaced', 'v2', 'v3']);
  });
});

describe('unified diff', () => {
  it('is a patch that `patch` applies to turn the old file into the new one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ord-diff-'));
    try {
      const original = containerdDefault();
      const merged = merge(original, 'c', opts()).text;
      const diff = unifiedDiff(original, merged, 'a/config.toml', 'b/config.toml');
      expect(diff).toMatch(/^--- a\/config.toml\n\+\+\+ b\/config.toml\n@@ /);
      fs.writeFileSync(path.join(dir, 'config.toml'), original);
      fs.writeFileSync(path.join(dir, 'p.diff'), diff);
      execFileSync('patch', ['-s', path.join(dir, 'config.toml'), path.join(dir, 'p.diff')]);
      expect(fs.readFileSync(path.join(dir, 'config.toml'), 'utf8')).toBe(merged);
      expect(unifiedDiff(merged, merged, 'a', 'b')).toBe('');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('patch applies it for arbitrary line edits, final newline or not', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ord-diff-'));
    const text = fc
      .tuple(fc.array(fc.constantFrom('a', 'b', 'c', '', '# x', '[t]', 'k = 1'), { maxLength: 30 }), fc.boolean())
      .map(([lines, eol]) => (lines.length === 0 ? '' : lines.join('\n') + (eol ? '\n' : '')));
    try {
      fc.assert(
        fc.property(text, text, (before, after) => {
          fs.writeFileSync(path.join(dir, 'f'), before);
          fs.writeFileSync(path.join(dir, 'p'), unifiedDiff(before, after, 'a/f', 'b/f'));
          if (before !== after) execFileSync('patch', ['-s', '-f', path.join(dir, 'f'), path.join(dir, 'p')]);
          expect(fs.readFileSync(path.join(dir, 'f'), 'utf8')).toBe(after);
        }),
        { numRuns: 40 },
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
