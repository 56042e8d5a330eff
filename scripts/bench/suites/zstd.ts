/**
 * Layer decompression: outrigger-zstd against `zstd -dc`, `gzip -dc` and `pigz -dc` on one
 * ~790 MB tar made from /usr, compressed once (zstd -3, gzip -6) into .cache/bench/ and reused.
 * Every command writes to /dev/null through `sh -c 'exec … > /dev/null'`, the same for all, so
 * only decoding and I/O are compared; the pipe rows run through `cat` like containerd's pipe.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TimedBenchmark, Variant } from '../model.ts';
import { ROOT } from '../paths.ts';
import { copySea } from '../sea-copy.ts';
import { sha256File, writeOneLayerImage } from '../one-layer-image.ts';

const CACHE = path.join(ROOT, '.cache/bench');
const TAR = path.join(CACHE, 'usr-layer.tar');
const ZST = `${TAR}.zst`;
const GZ = `${TAR}.gz`;
/** Bump when the recipe changes, so a stale cache is rebuilt. */
const RECIPE = 'v1: tar -C / usr/share usr/include usr/sbin usr/libexec; zstd -3; pigz -6';
const STAMP = path.join(CACHE, 'usr-layer.recipe');
// Measured from a private copy reached through its link name: other work rebuilds dist/ at any
// time, and a binary fresh from --build-sea maps ~20-35 MB more file pages than the same bytes
// copied, which is how an operator installs it (see the startup suite).
const COPY_DIR = path.join(os.tmpdir(), `outrigger-bench-zstd-${process.pid}`);
const OURS = path.join(COPY_DIR, 'outrigger-zstd');

function copyBinary(): void {
  copySea(COPY_DIR, ['outrigger-zstd'], 'zstd');
}

function removeCopy(): void {
  fs.rmSync(COPY_DIR, { recursive: true, force: true });
}

function sh(command: string): string[] {
  return ['sh', '-c', command];
}

function q(file: string): string {
  return `'${file.replaceAll("'", `'\\''`)}'`;
}

/** Makes the layer and its compressed forms once; returns a note with their sizes. */
function ensureLayer(): string {
  copyBinary();
  const fresh = fs.existsSync(STAMP) && fs.readFileSync(STAMP, 'utf8') === RECIPE && [TAR, ZST, GZ].every((f) => fs.existsSync(f));
  if (!fresh) {
    fs.mkdirSync(CACHE, { recursive: true });
    for (const f of [TAR, ZST, GZ, STAMP]) fs.rmSync(f, { force: true });
    // GNU tar exits 1 when a file changed while read; the archive is still valid for this purpose.
    execFileSync('sh', ['-c', `tar -C / -cf ${q(TAR)} usr/share usr/include usr/sbin usr/libexec 2>/dev/null; test -s ${q(TAR)}`]);
    execFileSync('zstd', ['-q', '-3', '-T0', '-f', TAR, '-o', ZST]);
    execFileSync('sh', ['-c', `pigz -6 -c ${q(TAR)} > ${q(GZ)}`]);
    fs.writeFileSync(STAMP, RECIPE);
  }
  const mb = (f: string) => `${(fs.statSync(f).size / 1e6).toFixed(0)} MB`;
  return `layer: ${mb(TAR)} tar from /usr, ${mb(ZST)} as zstd -3, ${mb(GZ)} as gzip -6 (.cache/bench/)`;
}

function toNull(label: string, command: string, extra: Partial<Variant> = {}): Variant {
  return { label, argv: sh(`exec ${command} > /dev/null`), display: `${command.replaceAll(q(OURS), 'outrigger-zstd')} > /dev/null`, ...extra };
}

function throughPipes(label: string, command: string, input: string): Variant {
  const line = `cat ${input} | ${command} | cat > /dev/null`;
  return { label, argv: sh(line.replace(input, q(input))), display: line.replaceAll(q(OURS), 'outrigger-zstd') };
}

export const zstdDecode: TimedBenchmark = {
  kind: 'timed',
  name: 'zstd-decode',
  title: 'zstd layer decode',
  what:
    'Decompressing a ~790 MB tar+zstd layer (zstd -3, made from /usr) to /dev/null, and through pipes on both ' +
    'sides as containerd runs a stream processor: outrigger-zstd (node:zlib\'s libzstd driven into reused 1 MiB ' +
    'buffers) against the zstd 1.5.4 CLI. Goal: at least 1.0× the CLI\'s speed, never below 0.95×; peak RSS ≤ 96 MB. ' +
    'Peak RSS includes the SEA\'s own file pages (~45 MB for an idle `outrigger --version` from an installed copy).',
  variants: [
    toNull('zstd -dc', `zstd -dc ${q(ZST)}`, { setup: ensureLayer, teardown: removeCopy }),
    toNull('outrigger-zstd -dc', `${q(OURS)} -dc ${q(ZST)}`),
    throughPipes('zstd -dc, pipes', 'zstd -dc', ZST),
    throughPipes('outrigger-zstd -dc, pipes', q(OURS) + ' -dc', ZST),
    {
      label: 'stream-processor mode, pipes',
      argv: sh(`cat ${q(ZST)} | STREAM_PROCESSOR_MEDIATYPE=application/vnd.oci.image.layer.v1.tar+zstd ${q(OURS)} | cat > /dev/null`),
      display: 'cat LAYER | STREAM_PROCESSOR_MEDIATYPE=…tar+zstd outrigger-zstd | cat > /dev/null',
      note: 'what containerd runs: also tracks tar entry boundaries and holds up to 4 MiB back',
    },
  ],
  ours: 'outrigger-zstd -dc',
  peer: 'zstd -dc',
  rounds: 3,
  quickRounds: 1,
  warmupRounds: 1,
};

export const gzipDecode: TimedBenchmark = {
  kind: 'timed',
  name: 'gzip-decode',
  title: 'gzip layer decode',
  what:
    'Decompressing the same ~790 MB layer as tar+gzip (gzip -6) to /dev/null: outrigger-zstd (node:zlib\'s ' +
    'zlib, reused buffers) against `gzip -dc` (goal ≥ 2×) and `pigz -dc` (goal ≥ 1.1×), which containerd ' +
    'itself execs for gzip layers when installed.',
  variants: [
    toNull('gzip -dc', `gzip -dc ${q(GZ)}`, { setup: ensureLayer, teardown: removeCopy }),
    toNull('pigz -dc', `pigz -dc ${q(GZ)}`),
    toNull('outrigger-zstd -dc', `${q(OURS)} -dc ${q(GZ)}`),
    {
      label: 'stream-processor mode, pipes',
      argv: sh(`cat ${q(GZ)} | STREAM_PROCESSOR_MEDIATYPE=application/vnd.oci.image.layer.v1.tar+gzip ${q(OURS)} | cat > /dev/null`),
      display: 'cat LAYER | STREAM_PROCESSOR_MEDIATYPE=…tar+gzip outrigger-zstd | cat > /dev/null',
    },
  ],
  ours: 'outrigger-zstd -dc',
  peer: 'gzip -dc',
  rounds: 3,
  quickRounds: 1,
  warmupRounds: 1,
};

// ---- end to end: `ctr images import` of a tar+zstd image, our processor vs containerd's own ----

const IMPORT_DIR = path.join(CACHE, 'zstd-import');
const IMPORT_IMAGE = path.join(IMPORT_DIR, 'usr-share-zstd.oci.tar');
const IMPORT_RECIPE = 'v1: tar -C / usr/share; zstd -3 --check; OCI layout, one layer';
const IMPORT_STAMP = path.join(IMPORT_DIR, 'recipe');
const IMPORT_NAME = 'docker.io/outrigger/bench-usr-share:zstd';
const ZSTD_LAYER = 'application/vnd.oci.image.layer.v1.tar+zstd';

/** A one-layer OCI image (layout tar) whose layer is /usr/share as tar+zstd. */
function ensureImportImage(): string {
  const fresh = fs.existsSync(IMPORT_STAMP) && fs.readFileSync(IMPORT_STAMP, 'utf8') === IMPORT_RECIPE && fs.existsSync(IMPORT_IMAGE);
  if (!fresh) {
    fs.rmSync(IMPORT_DIR, { recursive: true, force: true });
    fs.mkdirSync(IMPORT_DIR, { recursive: true });
    const tar = path.join(IMPORT_DIR, 'layer.tar');
    execFileSync('sh', ['-c', `tar -C / -cf ${q(tar)} usr/share 2>/dev/null; test -s ${q(tar)}`]);
    const diffId = sha256File(tar).digest;
    const zst = path.join(IMPORT_DIR, 'layer.tar.zst');
    execFileSync('zstd', ['-q', '-3', '-T0', '--check', '-f', tar, '-o', zst]);
    fs.rmSync(tar);
    writeOneLayerImage({ layerFile: zst, move: true, layerMediaType: ZSTD_LAYER, diffId, name: IMPORT_NAME, workDir: IMPORT_DIR, archive: IMPORT_IMAGE });
    fs.writeFileSync(IMPORT_STAMP, IMPORT_RECIPE);
  }
  return `image: ${(fs.statSync(IMPORT_IMAGE).size / 1e6).toFixed(0)} MB OCI archive, one tar+zstd layer of /usr/share`;
}

type Instance = { address: string; stop(): Promise<void> };

/** A private containerd (scripts/dev-containerd) for one variant; started in setup, stopped in teardown. */
function importVariant(label: string, withProcessor: boolean, note: string): Variant {
  let instance: Instance | undefined;
  const addressFile = path.join(IMPORT_DIR, `${withProcessor ? 'ours' : 'builtin'}.address`);
  // Each run imports into a fresh namespace ($$ is the shell's pid), so every run unpacks the
  // layer again; the blobs are already in the (shared) content store after the check run.
  const command = `ctr --address "$(cat ${q(addressFile)})" --namespace bench$$ images import ${q(IMPORT_IMAGE)} > /dev/null`;
  return {
    label,
    argv: sh(command),
    display: `ctr --namespace <fresh> images import ${path.relative(ROOT, IMPORT_IMAGE)}`,
    note,
    setup: async () => {
      const made = ensureImportImage();
      copyBinary();
      const { PrivateContainerd } = await import('../../dev-containerd/private-containerd.ts');
      instance = await PrivateContainerd.start(
        withProcessor
          ? {
              binDirs: [COPY_DIR],
              streamProcessors: {
                'io.containerd.outrigger.zstd.v1.tar.zstd': {
                  accepts: [ZSTD_LAYER],
                  returns: 'application/vnd.oci.image.layer.v1.tar',
                  path: 'outrigger-zstd',
                  // One line per unpacked layer: shows afterwards that our processor did the work.
                  args: ['--log-file', path.join(IMPORT_DIR, 'processor.log')],
                },
              },
            }
          : {},
      );
      fs.writeFileSync(addressFile, instance.address);
      return made;
    },
    teardown: async () => {
      await instance?.stop();
      fs.rmSync(addressFile, { force: true });
      removeCopy();
    },
  };
}

export const zstdImport: TimedBenchmark = {
  kind: 'timed',
  name: 'zstd-import',
  title: 'ctr images import, tar+zstd',
  what:
    '`ctr images import` of a one-layer image (/usr/share as tar+zstd) into a private containerd 1.6, unpacked ' +
    'to overlayfs: with outrigger-zstd configured in [stream_processors] against containerd\'s built-in zstd ' +
    'decoder (Go). Each run uses a fresh namespace so the layer is unpacked every time.',
  variants: [
    importVariant('containerd built-in', false, 'no stream processor configured'),
    importVariant('outrigger-zstd processor', true, '[stream_processors] entry for tar+zstd → outrigger-zstd'),
  ],
  ours: 'outrigger-zstd processor',
  peer: 'containerd built-in',
  rounds: 3,
  quickRounds: 1,
  warmupRounds: 1,
};
