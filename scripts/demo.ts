/**
 * The main job: shows each outrigger tool working on real images and containers inside a
 * private containerd (its own root, state, sockets and config under a temp dir), then tears
 * everything down and shows that nothing was left behind. Grows with every tool that lands.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildTestImages } from './test-images.ts';
import {
  DIST_BIN,
  describeLeftovers,
  leftoversEmpty,
  startPrivateContainerd,
  uniqueId,
  type PrivateContainerd,
} from './dev-containerd/private-containerd.ts';

const outrigger = path.join(DIST_BIN, 'outrigger');

function step(title: string): void {
  process.stdout.write(`\n== ${title}\n`);
}

function show(label: string, text: string): void {
  for (const line of text.trimEnd().split('\n')) process.stdout.write(`   ${label} ${line}\n`);
}

function runOutrigger(args: string[]): string {
  return execFileSync(outrigger, args, { encoding: 'utf8' });
}

const TAR = 'application/vnd.oci.image.layer.v1.tar';

/** The [stream_processors] entries the demo's containerd gets: outrigger-zstd for zstd and gzip layers. */
function streamProcessors(processorLog: string) {
  const zstd = (accepts: string) => ({ accepts: [accepts], returns: TAR, path: 'outrigger-zstd', args: ['--log-file', processorLog] });
  return {
    'io.containerd.outrigger.zstd.v1.tar.zstd': zstd(`${TAR}+zstd`),
    'io.containerd.outrigger.zstd.v1.tar.gzip': zstd(`${TAR}+gzip`),
  };
}

async function demo(ctd: PrivateContainerd, workDir: string, processorLog: string): Promise<void> {
  step(`private containerd at ${ctd.address} (namespace ${ctd.namespace}, config ${ctd.configFile})`);
  show('ctr>', (await ctd.ctr(['version'], { check: true })).stdout);
  const config = fs.readFileSync(ctd.configFile, 'utf8');
  show('config>', config.slice(config.indexOf('[stream_processors')).split('\n[plugins')[0]!);

  step('test images built here from busybox-static, one per layer media type, salted');
  const images = await buildTestImages({ outDir: path.join(workDir, 'images'), salt: uniqueId('demo') });
  for (const image of images) {
    await ctd.importImage(image.file);
    show('import>', `${image.name}  ${image.mediaType}  ${image.layerDigest.slice(0, 19)}…`);
  }
  step(`what outrigger-zstd did while containerd unpacked (its --log-file ${processorLog})`);
  show('log>', fs.readFileSync(processorLog, 'utf8'));

  step('a container from each image (runtime io.containerd.runc.v2 until the outrigger shim lands, issue #4)');
  for (const image of images) {
    const result = await ctd.run({
      image: image.name,
      args: ['sh', '-c', 'echo "hello from $(cat /etc/outrigger-image)"; busybox | head -1'],
    });
    if (result.exitCode !== 0) throw new Error(`container from ${image.name} failed: ${result.stderr}`);
    show('run>', result.stdout);
  }
}

async function main(): Promise<void> {
  step('the binary');
  show('$', `${outrigger} --version`);
  show('>', runOutrigger(['--version']));
  show('links>', fs.readdirSync(DIST_BIN).filter((n) => n !== 'outrigger').join(' '));

  step('native calls inside the SEA (outrigger sys-selftest)');
  const selftest = JSON.parse(runOutrigger(['sys-selftest'])) as { results: { name: string; ok: boolean }[] };
  show('>', selftest.results.map((r) => `${r.ok ? 'ok  ' : 'FAIL'} ${r.name}`).join('\n'));

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-demo-'));
  const processorLog = path.join(workDir, 'outrigger-zstd.log');
  const ctd = await startPrivateContainerd({ streamProcessors: streamProcessors(processorLog) });
  let failed: unknown;
  try {
    await demo(ctd, workDir, processorLog);
  } catch (err) {
    failed = err;
  }
  step('teardown');
  await ctd.stop();
  fs.rmSync(workDir, { recursive: true, force: true });
  const left = ctd.leftovers();
  show('>', leftoversEmpty(left) ? 'nothing left behind: no process, mount, socket or runc state' : describeLeftovers(left));
  if (failed) throw failed;
  process.stdout.write('\ndemo finished\n');
}

await main();
