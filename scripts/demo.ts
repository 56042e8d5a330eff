/**
 * The main job: outrigger bolted onto a private containerd (its own root, state, sockets and
 * config under a temp dir) the way an operator would do it — `outrigger install` into a prefix
 * and containerd's config.toml, restart — then real images unpacked through our processors and
 * containers run under our shim, and finally `outrigger uninstall` and a teardown that shows
 * nothing was left behind.
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

const OUR_RUNTIME = 'io.containerd.outrigger.v2';

function step(title: string): void {
  process.stdout.write(`\n== ${title}\n`);
}

function show(label: string, text: string): void {
  for (const line of text.trimEnd().split('\n')) process.stdout.write(`   ${label} ${line}\n`);
}

function run(binary: string, args: string[]): string {
  return execFileSync(binary, args, { encoding: 'utf8' });
}

interface DemoPaths {
  readonly workDir: string;
  readonly prefix: string;
  readonly logDir: string;
}

async function demo(ctd: PrivateContainerd, paths: DemoPaths): Promise<void> {
  const built = path.join(DIST_BIN, 'outrigger');
  step(`private containerd at ${ctd.address} (namespace ${ctd.namespace})`);
  show('ctr>', (await ctd.ctr(['version'], { check: true })).stdout.split('\n').slice(0, 3).join('\n'));

  step(`outrigger install --prefix ${paths.prefix} --containerd-config ${ctd.configFile}`);
  show('>', run(built, ['install', '--prefix', paths.prefix, '--containerd-config', ctd.configFile, '--processors', 'zstd,gzip', '--log-dir', paths.logDir]));
  const installed = path.join(paths.prefix, 'bin', 'outrigger');
  await ctd.restart('SIGTERM');
  show('>', 'containerd restarted on the merged config');

  step('outrigger doctor against the running containerd');
  show('doctor>', run(installed, ['doctor', '--containerd-config', ctd.configFile, '--socket', ctd.address, '--path', `${path.join(paths.prefix, 'bin')}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`]));

  step('test images built here from busybox-static, one per layer media type, salted');
  const images = await buildTestImages({ outDir: path.join(paths.workDir, 'images'), salt: uniqueId('demo') });
  for (const image of images) {
    await ctd.importImage(image.file);
    show('import>', `${image.name}  ${image.mediaType}  ${image.layerDigest.slice(0, 19)}…`);
  }
  step(`what outrigger-zstd did while containerd unpacked (${paths.logDir})`);
  for (const file of fs.readdirSync(paths.logDir)) show('log>', fs.readFileSync(path.join(paths.logDir, file), 'utf8'));

  step(`a container from each image under ${OUR_RUNTIME}`);
  for (const image of images) {
    const result = await ctd.run({
      image: image.name,
      runtime: OUR_RUNTIME,
      args: ['sh', '-c', 'echo "hello from $(cat /etc/outrigger-image)"; exit 7'],
    });
    show('run>', `${result.stdout.trim()}   (exit status ${result.exitCode})`);
    if (result.exitCode !== 7) throw new Error(`container from ${image.name} exited ${result.exitCode}: ${result.stderr}`);
  }

  step(`a detached container, an exec into it, and a kill (${OUR_RUNTIME})`);
  const id = uniqueId('demo');
  await ctd.run({ image: images[0]!.name, runtime: OUR_RUNTIME, id, detach: true, args: ['sleep', '300'] });
  show('ps>', (await ctd.ctr(['tasks', 'ls'], { check: true })).stdout);
  show('exec>', (await ctd.ctr(['tasks', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo pid 1 is $(cat /proc/1/comm)'], { check: true })).stdout);
  await ctd.ctr(['tasks', 'kill', '-s', 'SIGKILL', id], { check: true });
  await ctd.ctr(['tasks', 'delete', id]);
  await ctd.ctr(['containers', 'rm', id], { check: true });
  show('>', `killed and removed ${id}`);

  step('outrigger uninstall (restores config.toml byte for byte)');
  show('>', run(installed, ['uninstall', '--prefix', paths.prefix]));
}

async function main(): Promise<void> {
  const built = path.join(DIST_BIN, 'outrigger');
  step('the binary');
  show('>', run(built, ['--version']));
  show('links>', fs.readdirSync(DIST_BIN).filter((n) => n !== 'outrigger').join(' '));

  step('native calls inside the SEA (outrigger sys-selftest)');
  const selftest = JSON.parse(run(built, ['sys-selftest'])) as { results: { name: string; ok: boolean }[] };
  show('>', selftest.results.map((r) => `${r.ok ? 'ok  ' : 'FAIL'} ${r.name}`).join('  '));

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-demo-'));
  const paths: DemoPaths = { workDir, prefix: path.join(workDir, 'prefix'), logDir: path.join(workDir, 'log') };
  // containerd finds the shim and processors where install puts them, as on a real node.
  const ctd = await startPrivateContainerd({ binDirs: [path.join(paths.prefix, 'bin')] });
  let failed: unknown;
  try {
    await demo(ctd, paths);
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
