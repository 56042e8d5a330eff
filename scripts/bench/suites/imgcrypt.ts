/**
 * Layer decryption: `ctd-decoder` (outrigger imgcrypt decrypt: AES-256-CTR and the HMAC-SHA256
 * check, output held back until it verifies) against `openssl enc -d -aes-256-ctr` on the same
 * ciphertext — the physical limit here, since openssl checks no HMAC — and the fused
 * decrypt+gunzip against decrypt piped into outrigger-zstd. Layers: a 300 MB slice of a tar of
 * /usr (and its gzip -6), encrypted once by our `imgcrypt encrypt` for a JWE recipient, kept in
 * .cache/bench/. Goal (issue #9): decrypt ≥ 0.8× openssl.
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TimedBenchmark, Variant } from '../model.ts';
import { ROOT } from '../paths.ts';
import { copySea } from '../sea-copy.ts';

const CACHE = path.join(ROOT, '.cache/bench/imgcrypt');
const RECIPE = 'v1: tar -C / usr | head -c 300000000; pigz -6; outrigger imgcrypt encrypt jwe:RSA-2048';
const STAMP = path.join(CACHE, 'recipe');
const PLAIN = path.join(CACHE, 'layer.tar');
const ENC = path.join(CACHE, 'layer.tar.enc');
const ENC_GZ = path.join(CACHE, 'layer.tar.gz.enc');
const DESC = path.join(CACHE, 'layer.tar.enc.json');
const DESC_GZ = path.join(CACHE, 'layer.tar.gz.enc.json');
// The keys dir holds the private key alone: the decoder reads every file in it (and warns about the rest).
const KEYS = path.join(CACHE, 'keys');
const KEY = path.join(KEYS, 'priv.pem');
const COPY_DIR = path.join(os.tmpdir(), `outrigger-bench-imgcrypt-${process.pid}`);
const DECODER = path.join(COPY_DIR, 'ctd-decoder');
const ZSTD = path.join(COPY_DIR, 'outrigger-zstd');
const TAR_ENC = 'application/vnd.oci.image.layer.v1.tar+encrypted';
const GZ_ENC = 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted';

function q(file: string): string {
  return `'${file.replaceAll("'", `'\\''`)}'`;
}

function sh(command: string): string[] {
  return ['sh', '-c', command];
}

function encrypt(input: string, output: string, desc: string, mediaType: string): void {
  execFileSync('sh', ['-c', `${q(path.join(COPY_DIR, 'outrigger-imgcrypt'))} encrypt --recipient jwe:${q(path.join(CACHE, 'pub.pem'))} --annotations ${q(desc)} --media-type ${mediaType} < ${q(input)} > ${q(output)}`]);
}

function ensureLayers(): string {
  copySea(COPY_DIR, ['ctd-decoder', 'outrigger-imgcrypt', 'outrigger-zstd'], 'imgcrypt');
  const fresh = fs.existsSync(STAMP) && fs.readFileSync(STAMP, 'utf8') === RECIPE && [ENC, ENC_GZ, DESC, DESC_GZ, KEY].every((f) => fs.existsSync(f));
  if (!fresh) {
    fs.rmSync(CACHE, { recursive: true, force: true });
    fs.mkdirSync(CACHE, { recursive: true, mode: 0o700 });
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    fs.writeFileSync(path.join(CACHE, 'pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    fs.mkdirSync(KEYS, { mode: 0o700 });
    fs.writeFileSync(KEY, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    execFileSync('sh', ['-c', `tar -C / -cf - usr 2>/dev/null | head -c 300000000 > ${q(PLAIN)}; test -s ${q(PLAIN)}`]);
    execFileSync('sh', ['-c', `pigz -6 -c ${q(PLAIN)} > ${q(PLAIN)}.gz`]);
    encrypt(PLAIN, ENC, DESC, 'application/vnd.oci.image.layer.v1.tar');
    encrypt(`${PLAIN}.gz`, ENC_GZ, DESC_GZ, 'application/vnd.oci.image.layer.v1.tar+gzip');
    fs.rmSync(PLAIN);
    fs.rmSync(`${PLAIN}.gz`);
    fs.writeFileSync(STAMP, RECIPE);
  }
  const mb = (f: string) => `${(fs.statSync(f).size / 1e6).toFixed(0)} MB`;
  return `layers: ${mb(ENC)} encrypted tar, ${mb(ENC_GZ)} encrypted tar+gzip (.cache/bench/imgcrypt/)`;
}

function removeCopy(): void {
  fs.rmSync(COPY_DIR, { recursive: true, force: true });
}

const decoder = (mediaType: string, desc: string, extra = '') =>
  `STREAM_PROCESSOR_MEDIATYPE=${mediaType} ${q(DECODER)} --decryption-keys-path ${q(KEYS)} --annotations ${q(desc)}${extra}`;

// openssl needs the raw key; any key decrypts the same bytes at the same cost (it checks no MAC).
const OPENSSL = 'openssl enc -d -aes-256-ctr -K ' + '11'.repeat(32) + ' -iv ' + '22'.repeat(16);

function piped(label: string, command: string, input: string, display: string, extra: Partial<Variant> = {}): Variant {
  return { label, argv: sh(`cat ${q(input)} | ${command} | cat > /dev/null`), display, ...extra };
}

export const imgcryptDecrypt: TimedBenchmark = {
  kind: 'timed',
  name: 'imgcrypt-decrypt',
  title: 'imgcrypt layer decryption',
  what:
    'Decrypting a 300 MB encrypted tar layer (a slice of a tar of /usr, encrypted by our `imgcrypt encrypt` for an RSA JWE ' +
    'recipient) through pipes as containerd runs a stream processor: ctd-decoder (key unwrap, AES-256-CTR, HMAC-SHA256 ' +
    'verified before the last 64 KiB are released) against `openssl enc -d -aes-256-ctr`, which does the cipher only. ' +
    'Second pair: the same layer gzip-compressed, fused decrypt+gunzip in one process (`--decompress`) against decrypt ' +
    'piped into outrigger-zstd. Goal: decrypt ≥ 0.8× openssl.',
  variants: [
    piped('openssl enc -d -aes-256-ctr', OPENSSL, ENC, `cat LAYER | ${OPENSSL} | cat > /dev/null`, { setup: ensureLayers, teardown: removeCopy }),
    piped('ctd-decoder', decoder(TAR_ENC, DESC), ENC, 'cat LAYER | STREAM_PROCESSOR_MEDIATYPE=…tar+encrypted ctd-decoder --decryption-keys-path KEYS | cat > /dev/null'),
    piped(
      'decrypt | outrigger-zstd (gunzip)',
      `${decoder(GZ_ENC, DESC_GZ)} | STREAM_PROCESSOR_MEDIATYPE=application/vnd.oci.image.layer.v1.tar+gzip ${q(ZSTD)}`,
      ENC_GZ,
      'cat LAYER | ctd-decoder … | outrigger-zstd | cat > /dev/null',
    ),
    piped('fused decrypt+gunzip', decoder(GZ_ENC, DESC_GZ, ' --decompress'), ENC_GZ, 'cat LAYER | ctd-decoder --decompress … | cat > /dev/null', {
      peer: 'decrypt | outrigger-zstd (gunzip)',
    }),
  ],
  ours: 'ctd-decoder',
  peer: 'openssl enc -d -aes-256-ctr',
  rounds: 3,
  quickRounds: 1,
  warmupRounds: 1,
};
