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

async function demo(ctd: PrivateContainerd, workDir: string): Promise<void> {
  step(`private containerd at ${ctd.address} (namespace ${ctd.namespace}, config ${ctd.configFile})`);
  show('ctr>', (await ctd.ctr(['version'], { check: true })).stdout);

  step('test images built here from busybox-static, one per layer media type, salted');
  const images = await buildTestImages({ outDir: path.join(workDir, 'images'), salt: uniqueId('demo') });
  for (const image of images) {
    await ctd.importImage(image.file);
    show('import>', `${image.name}  ${image.mediaType}  ${image.layerDigest.slice(0, 19)}…`);
  }

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
  const ctd = await startPrivateContainerd({});
  let failed: unknown;
  try {
    await demo(ctd, workDir);
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
