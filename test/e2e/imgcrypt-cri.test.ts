/**
 * Encrypted images on Kubernetes' path: pushed with skopeo to a private docker-registry on
 * 127.0.0.1, pulled by containerd 1.6's CRI plugin (image_decryption key_model "node") whose
 * stream processors under the two payload ids are our decoder (`ctd-decoder`, the SEA link) with
 * a keys directory laid out like a Kubernetes Secret mount (symlinks). CRI sends the payload (the
 * descriptor with its annotations, no keys); the keys come from the directory.
 *  - tar+gzip+encrypted (skopeo encrypts while pushing) → id io.containerd.ocicrypt.decoder.v1.tar.gzip
 *  - tar+encrypted (our encrypt-image, pushed as is) → id io.containerd.ocicrypt.decoder.v1.tar
 * Both run in a pod; a pull with only a wrong key fails with our message.
 */
import crypto, { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestImages, MEDIA_TYPE_LAYER_TAR, type BuiltImage } from '../../scripts/test-images.ts';
import type { PrivateContainerdOptions } from '../../scripts/dev-containerd/private-containerd.ts';
import { builtBinary } from '../support/built-binary.ts';
import { CRI_NAMESPACE, CriClient, hostNetworkPod, parseCriLog, simpleContainer } from '../support/cri-client.ts';
import { criPullImage } from '../support/cri-pull.ts';
import { startLocalRegistry, type LocalRegistry } from '../support/local-registry.ts';
import { uniqueId, useContainerd } from './harness.ts';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'imgcrypt-cri-'));
const keysDir = path.join(work, 'keys');
const logRoot = path.join(work, 'pods');
const salt = `imgcrypt-cri-${process.pid}-${randomBytes(6).toString('hex')}`;
const SANDBOX_PREFIX = 'docker.io/local/imgcrypt-cri-pause';
const WORKLOAD_PREFIX = 'docker.io/local/imgcrypt-cri-busybox';

const right = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const wrong = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const rightPub = path.join(work, 'right.pub.pem');
fs.writeFileSync(rightPub, right.publicKey.export({ type: 'spki', format: 'pem' }));

/**
 * A Kubernetes Secret volume: files are symlinks into `..data`, itself a symlink to a timestamped
 * directory; the decoder must follow them.
 */
function mountSecret(files: Record<string, string>): void {
  fs.rmSync(keysDir, { recursive: true, force: true });
  const stamped = path.join(keysDir, `..${Date.now()}`);
  fs.mkdirSync(stamped, { recursive: true, mode: 0o700 });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(stamped, name), content, { mode: 0o600 });
  fs.symlinkSync(path.basename(stamped), path.join(keysDir, '..data'));
  for (const name of Object.keys(files)) fs.symlinkSync(path.join('..data', name), path.join(keysDir, name));
}

const decoder = (accepts: string, returns: string) => ({
  accepts: [accepts],
  returns,
  path: 'ctd-decoder',
  args: ['--decryption-keys-path', keysDir],
});

const options: PrivateContainerdOptions = {
  cri: { sandboxImage: `${SANDBOX_PREFIX}-tar:latest`, imageDecryptionKeyModel: 'node', registryMirrors: {} },
  streamProcessors: {
    'io.containerd.ocicrypt.decoder.v1.tar.gzip': decoder(`${MEDIA_TYPE_LAYER_TAR}+gzip+encrypted`, `${MEDIA_TYPE_LAYER_TAR}+gzip`),
    'io.containerd.ocicrypt.decoder.v1.tar': decoder(`${MEDIA_TYPE_LAYER_TAR}+encrypted`, MEDIA_TYPE_LAYER_TAR),
  },
};

let registry: LocalRegistry | undefined;
let cri: CriClient | undefined;
// Registered before useContainerd: the registry must be up (and its address in the mirror
// config) before containerd starts, and is stopped after it.
beforeAll(async () => {
  registry = await startLocalRegistry(path.join(work, 'registry'));
  const cfg = options.cri as { registryMirrors: Record<string, string[]> };
  cfg.registryMirrors[registry.host] = [`http://${registry.host}`];
});
afterAll(async () => {
  cri?.close();
  await registry?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

const ctd = useContainerd(options);

function host(): string {
  if (!registry) throw new Error('registry not started');
  return registry.host;
}

async function skopeo(args: string[]): Promise<void> {
  await execa('skopeo', ['copy', '--dest-tls-verify=false', ...args]);
}

/** A salted busybox image as an OCI-layout directory, from the harness's OCI tar. */
async function busyboxLayout(kind: 'tar' | 'gzip', tag: string): Promise<{ image: BuiltImage; layout: string }> {
  const [image] = await buildTestImages({ outDir: path.join(work, `img-${tag}`), media: [kind], salt: `${salt}-${tag}`, repositoryPrefix: `${WORKLOAD_PREFIX}-${tag}` });
  // Unpacked as is: a skopeo copy into oci: would gzip the uncompressed layer.
  const layout = path.join(work, `layout-${tag}`);
  fs.mkdirSync(layout);
  await execa('tar', ['-xf', image!.file, '-C', layout]);
  return { image: image!, layout };
}

beforeAll(async () => {
  const [pause] = await buildTestImages({ outDir: path.join(work, 'pause'), media: ['tar'], salt, repositoryPrefix: SANDBOX_PREFIX, cmd: ['/bin/sleep', '1000000'] });
  await ctd().importImage(pause!.file, { namespace: CRI_NAMESPACE });
  cri = CriClient.open(ctd().address);
  await cri.waitRuntimeReady();
});

function client(): CriClient {
  if (!cri) throw new Error('CRI client not open');
  return cri;
}

/** Pulls through CRI, runs `cat /etc/outrigger-salt` in a host-network pod, returns its stdout. */
async function pullAndRun(ref: string): Promise<string> {
  await criPullImage(ctd().address, ref);
  const rt = client().runtime;
  const logDirectory = path.join(logRoot, uniqueId('pod'));
  const config = hostNetworkPod({ name: uniqueId('imgcrypt-pod'), uid: uniqueId('uid'), logDirectory });
  const { podSandboxId } = await rt.runPodSandbox({ config, runtimeHandler: 'runc' });
  try {
    const { containerId } = await rt.createContainer({
      podSandboxId,
      sandboxConfig: config,
      config: simpleContainer({ name: 'app', image: ref, command: ['cat', '/etc/outrigger-salt'], logPath: 'app/0.log' }),
    });
    await rt.startContainer({ containerId });
    const status = await client().waitExited(containerId);
    expect(status.exitCode).toBe(0);
    return parseCriLog(fs.readFileSync(path.join(logDirectory, 'app/0.log'), 'utf8'))
      .filter((l) => l.stream === 'stdout')
      .map((l) => l.content)
      .join('\n');
  } finally {
    await rt.stopPodSandbox({ podSandboxId }).catch(() => undefined);
    await rt.removePodSandbox({ podSandboxId }).catch(() => undefined);
  }
}

describe('encrypted images through CRI with our decoder', () => {
  it('pulls and runs a tar+gzip+encrypted image skopeo encrypted while pushing (payload id …tar.gzip)', async () => {
    builtBinary('ctd-decoder');
    mountSecret({ 'right.pem': right.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'README': 'not a key\n' });
    const { image } = await busyboxLayout('gzip', 'gz');
    const ref = `${host()}/outrigger/imgcrypt-gzip:latest`;
    await skopeo(['--encryption-key', `jwe:${rightPub}`, `oci-archive:${image.file}`, `docker://${ref}`]);
    const manifest = JSON.parse((await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout) as { layers: { mediaType: string }[] };
    expect(manifest.layers.map((l) => l.mediaType)).toEqual([`${MEDIA_TYPE_LAYER_TAR}+gzip+encrypted`]);
    expect(await pullAndRun(ref)).toBe(`${salt}-gz`);
  });

  it('pulls and runs a tar+encrypted image from encrypt-image (payload id …tar)', async () => {
    mountSecret({ 'right.pem': right.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
    const { layout } = await busyboxLayout('tar', 'tar');
    const encrypted = path.join(work, 'layout-tar-enc');
    await execa(builtBinary(), ['imgcrypt', 'encrypt-image', '--recipient', `jwe:${rightPub}`, layout, encrypted]);
    const ref = `${host()}/outrigger/imgcrypt-tar:latest`;
    await skopeo(['--preserve-digests', `oci:${encrypted}:latest`, `docker://${ref}`]);
    const manifest = JSON.parse((await execa('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout) as { layers: { mediaType: string }[] };
    expect(manifest.layers.map((l) => l.mediaType)).toEqual([`${MEDIA_TYPE_LAYER_TAR}+encrypted`]);
    expect(await pullAndRun(ref)).toBe(`${salt}-tar`);
  });

  it('fails the pull with our message when the keys directory holds only a wrong key', async () => {
    mountSecret({ 'wrong.pem': wrong.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
    const { image } = await busyboxLayout('gzip', 'wrong');
    const ref = `${host()}/outrigger/imgcrypt-wrong:latest`;
    await skopeo(['--encryption-key', `jwe:${rightPub}`, `oci-archive:${image.file}`, `docker://${ref}`]);
    const error = await criPullImage(ctd().address, ref).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error, 'the pull must fail').toBeDefined();
    expect(error!.message).toMatch(/call to DecryptLayer failed for layer sha256:[0-9a-f]{64}/);
    expect(error!.message).toMatch(/no suitable key unwrapper found[\s\S]*wrong\.pem/);
    const images = await client().images.listImages({});
    expect(images.images.flatMap((i) => i.repoTags)).not.toContain(ref);
  });
});
