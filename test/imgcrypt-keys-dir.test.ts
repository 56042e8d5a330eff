/**
 * `--decryption-keys-path` against what a real keys directory holds: a Kubernetes Secret mount
 * (`..data` -> `..2026_…` timestamped dir, visible names symlinked through `..data`), a dangling
 * symlink, a subdirectory (searched, as ctd-decoder's filepath.Walk does), junk, an empty file, a
 * 3 GiB sparse file and one just past the 1 MiB cap, a FIFO, /dev/zero, /proc/self/mem (a regular
 * file whose read fails with EIO, since root reads mode-000 files), /proc/self/status (size 0 by
 * stat, text when read), a public key and a password-protected key. Each unusable entry is skipped
 * with a warning naming it and why; the valid keys are still used; when none fits, the error
 * names the layer's schemes, the key files tried and the files skipped. Keys are made by openssl;
 * layers by the built binary's `imgcrypt encrypt`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecryptConfigBuilder } from '../processors/imgcrypt/decrypt-config.ts';
import { MAX_KEY_FILE_BYTES, readKeysDirectory } from '../processors/imgcrypt/keys-dir.ts';
import { pinnedBinary } from './support/built-binary.ts';

const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const GiB = 1024 * 1024 * 1024;
const STAMP = '..2026_12_06_08_00_00.123456789';

let dir: string;
let bin: string;
let dispose: (() => void) | undefined;
/** Key material made by openssl, outside any keys dir. */
const made = { rsa: '', rsaPub: '', ec: '', ecPub: '', cert: '', other: '', otherPub: '', stranger: '', strangerPub: '', protected: '' };
/** The mixed keys directory (Kubernetes layout plus every kind of junk). */
let keys: string;
const plaintext = zlib.gzipSync(Buffer.concat([Buffer.from('keys dir layer\n'), Buffer.alloc(70_000, 3)]));

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

function run(args: readonly string[], input: Buffer): { status: number | null; stdout: Buffer; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.STREAM_PROCESSOR_MEDIATYPE;
  const r = spawnSync(bin, ['imgcrypt', ...args], { input, env, cwd: dir, maxBuffer: 1 << 26, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Encrypts the layer for `recipients` with the built binary; returns the ciphertext and the descriptor file. */
function encryptFor(name: string, recipients: readonly string[]): { encrypted: Buffer; descriptor: string } {
  const descriptor = path.join(dir, `${name}.descriptor.json`);
  const r = run(['encrypt', ...recipients.flatMap((x) => ['--recipient', x]), '--media-type', LAYER, '--annotations', descriptor], plaintext);
  if (r.status !== 0) throw new Error(`encrypt ${name}: ${r.stderr}`);
  return { encrypted: r.stdout, descriptor };
}

function sparse(file: string, size: number): void {
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
}

/** A Kubernetes Secret volume: the keys in a timestamped dir, `..data` pointing at it, visible names through `..data`. */
function secretMount(root: string, entries: Record<string, string>): void {
  fs.mkdirSync(path.join(root, STAMP), { recursive: true });
  for (const [name, source] of Object.entries(entries)) fs.copyFileSync(source, path.join(root, STAMP, name));
  fs.symlinkSync(STAMP, path.join(root, '..data'));
  for (const name of Object.keys(entries)) fs.symlinkSync(path.join('..data', name), path.join(root, name));
}

beforeAll(() => {
  const pinned = pinnedBinary('outrigger');
  bin = pinned.path;
  dispose = pinned.dispose;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgcrypt-keysdir-'));
  const at = (name: string): string => path.join(dir, name);
  Object.assign(made, {
    rsa: at('rsa.pem'), rsaPub: at('rsa.pub.pem'), ec: at('ec.pem'), ecPub: at('ec.pub.pem'), cert: at('rsa.crt'),
    other: at('other.pem'), otherPub: at('other.pub.pem'), stranger: at('stranger.pem'), strangerPub: at('stranger.pub.pem'), protected: at('protected.pem'),
  });
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', made.rsa]);
  openssl(['pkey', '-in', made.rsa, '-pubout', '-out', made.rsaPub]);
  openssl(['req', '-x509', '-new', '-key', made.rsa, '-subj', '/CN=keys-dir-test', '-days', '2', '-out', made.cert]);
  // SEC1 "EC PRIVATE KEY", as `openssl ecparam -genkey` writes it.
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', made.ec]);
  openssl(['ec', '-in', made.ec, '-pubout', '-out', made.ecPub]);
  for (const [key, pub] of [[made.other, made.otherPub], [made.stranger, made.strangerPub]] as const) {
    openssl(['ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', key]);
    openssl(['ec', '-in', key, '-pubout', '-out', pub]);
  }
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-aes-256-cbc', '-pass', 'pass:not-given', '-out', made.protected]);

  keys = at('keys');
  fs.mkdirSync(keys);
  secretMount(keys, { 'rsa.pem': made.rsa, 'ec.pem': made.ec, 'rsa.crt': made.cert });
  fs.symlinkSync(path.join('..data', 'gone.pem'), path.join(keys, 'broken.pem'));
  fs.mkdirSync(path.join(keys, 'sub'));
  fs.copyFileSync(made.other, path.join(keys, 'sub', 'other.pem'));
  fs.writeFileSync(path.join(keys, 'sub', 'README'), 'keys for the cluster live here\n');
  fs.writeFileSync(path.join(keys, 'empty.pem'), '');
  sparse(path.join(keys, 'huge.pem'), 3 * GiB);
  fs.writeFileSync(path.join(keys, 'over.pem'), Buffer.alloc(MAX_KEY_FILE_BYTES + 1, 0x41));
  fs.writeFileSync(path.join(keys, 'at-cap.bin'), Buffer.alloc(MAX_KEY_FILE_BYTES, 0x41));
  if (spawnSync('mkfifo', [path.join(keys, 'pipe.pem')]).status !== 0) throw new Error('mkfifo failed');
  fs.symlinkSync('/dev/zero', path.join(keys, 'zero.pem'));
  fs.symlinkSync('/proc/self/mem', path.join(keys, 'mem.pem'));
  fs.symlinkSync('/proc/self/status', path.join(keys, 'status.pem'));
  fs.copyFileSync(made.rsaPub, path.join(keys, 'rsa.pub.pem'));
  fs.copyFileSync(made.protected, path.join(keys, 'protected.pem'));
  // A symlink back to the keys dir itself: a cycle, cut.
  fs.symlinkSync('.', path.join(keys, 'loop'));
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  dispose?.();
});

/** Every entry of the mixed dir that must be skipped, with what its warning must say. */
function expectedSkips(): Record<string, string | RegExp> {
  return {
    'broken.pem': 'dangling symbolic link to ..data/gone.pem',
    'sub/README': 'not a key: neither PEM, DER, JWK nor a binary OpenPGP keyring',
    'empty.pem': 'empty file',
    'huge.pem': `${3 * GiB} bytes: larger than the 1 MiB limit for key files; not read`,
    'over.pem': `${MAX_KEY_FILE_BYTES + 1} bytes: larger than the 1 MiB limit for key files; not read`,
    'at-cap.bin': 'not a key: neither PEM, DER, JWK nor a binary OpenPGP keyring',
    'pipe.pem': 'not a regular file (a FIFO)',
    'zero.pem': 'not a regular file (a character device)',
    'mem.pem': /^cannot read: EIO/,
    'status.pem': 'not a key: neither PEM, DER, JWK nor a binary OpenPGP keyring',
    'rsa.pub.pem': 'a public key; decryption needs the private key',
    'protected.pem': 'Missing password for encrypted private key',
  };
}

describe('what the keys directory yields', () => {
  it('reads each key once under its visible Kubernetes name, cuts the cycle and never reads the oversized or special files', () => {
    const { files, problems } = readKeysDirectory(keys);
    const rel = (p: string): string => path.relative(keys, p);
    expect(files.map((f) => rel(f.path)).sort()).toEqual(
      ['at-cap.bin', 'ec.pem', 'empty.pem', 'protected.pem', 'rsa.crt', 'rsa.pem', 'rsa.pub.pem', 'status.pem', 'sub/README', 'sub/other.pem'].sort(),
    );
    expect(files.find((f) => rel(f.path) === 'rsa.pem')!.bytes.equals(fs.readFileSync(made.rsa))).toBe(true);
    expect(files.find((f) => rel(f.path) === 'at-cap.bin')!.bytes.length).toBe(MAX_KEY_FILE_BYTES);
    expect(Object.fromEntries(problems.map((p) => [rel(p.source), p.reason]))).toEqual({
      'broken.pem': 'dangling symbolic link to ..data/gone.pem',
      'huge.pem': `${3 * GiB} bytes: larger than the 1 MiB limit for key files; not read`,
      'over.pem': `${MAX_KEY_FILE_BYTES + 1} bytes: larger than the 1 MiB limit for key files; not read`,
      'pipe.pem': 'not a regular file (a FIFO)',
      'zero.pem': 'not a regular file (a character device)',
      'mem.pem': expect.stringMatching(/^cannot read: EIO/),
    });
  });

  it('the builder keeps the usable keys and the certificate and warns once for every other entry, by name and reason', () => {
    const builder = new DecryptConfigBuilder();
    const warnings = builder.addKeysDirectory(keys);
    const dc = builder.build();
    expect(dc.privateKeys.map((k) => path.relative(keys, k.source)).sort()).toEqual(['ec.pem', 'rsa.pem', 'sub/other.pem']);
    expect(dc.x509s.map((c) => path.relative(keys, c.source))).toEqual(['rsa.crt']);
    const byFile = new Map<string, string>();
    for (const w of warnings) {
      const m = /^(.*?): skipped: (.*)$/.exec(w);
      expect(m, w).not.toBeNull();
      expect(byFile.has(m![1]!), `two warnings for ${m![1]}`).toBe(false);
      byFile.set(path.relative(keys, m![1]!), m![2]!);
    }
    const expected = expectedSkips();
    expect([...byFile.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [file, reason] of Object.entries(expected)) {
      if (typeof reason === 'string') expect(byFile.get(file), file).toBe(reason);
      else expect(byFile.get(file), file).toMatch(reason);
    }
    // Nothing is named by its ..data or timestamped path.
    expect(warnings.join('\n')).not.toContain(STAMP);
    expect(dc.skipped.map((s) => path.relative(keys, s.source)).sort()).toEqual(Object.keys(expected).sort());
  });

  it('a missing keys path or a file in its place is one warning, not a crash', () => {
    const missing = new DecryptConfigBuilder();
    expect(missing.addKeysDirectory(path.join(dir, 'nope'))).toEqual([`${path.join(dir, 'nope')}: skipped: keys directory does not exist`]);
    const file = new DecryptConfigBuilder();
    expect(file.addKeysDirectory(made.rsa)).toEqual([`${made.rsa}: skipped: not a directory`]);
  });

  it('property: any bytes in a key file are a key or a warning naming that file, and the valid key is still loaded', () => {
    const root = path.join(dir, 'prop');
    fs.mkdirSync(root);
    fs.copyFileSync(made.ec, path.join(root, 'good.pem'));
    const junk = path.join(root, 'junk');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        fs.writeFileSync(junk, bytes);
        const builder = new DecryptConfigBuilder();
        const warnings = builder.addKeysDirectory(root);
        const dc = builder.build();
        expect(dc.privateKeys.map((k) => k.source)).toContain(path.join(root, 'good.pem'));
        const used = [...dc.privateKeys, ...dc.x509s, ...dc.gpgPrivateKeys].some((k) => k.source === junk);
        expect(used ? warnings : warnings.map((w) => w.slice(0, junk.length + 10))).toEqual(used ? [] : [`${junk}: skipped:`]);
      }),
      { numRuns: 300 },
    );
  });
});

describe('decrypting through the built decoder with the keys directory', () => {
  it('decrypts with the RSA key reached through the Kubernetes links, the EC key, the key in a subdirectory, and pkcs7 with the linked certificate', () => {
    for (const [name, recipient] of [['rsa', `jwe:${made.rsaPub}`], ['ec', `jwe:${made.ecPub}`], ['other', `jwe:${made.otherPub}`], ['pkcs7', `pkcs7:${made.cert}`]] as const) {
      const { encrypted, descriptor } = encryptFor(name, [recipient]);
      const r = run(['decrypt', '--annotations', descriptor, '--decryption-keys-path', keys], encrypted);
      expect(r.status, `${name}: ${r.stderr}`).toBe(0);
      expect(r.stdout.equals(plaintext), name).toBe(true);
      // Every skipped entry is warned about on stderr, by name.
      for (const file of Object.keys(expectedSkips())) expect(r.stderr, `${name}: ${file}`).toContain(`warning: ${path.join(keys, file)}: skipped: `);
    }
  });

  it('when no key fits, exits 1 naming the layer schemes, the key files tried and the files skipped', () => {
    const { encrypted, descriptor } = encryptFor('stranger', [`jwe:${made.strangerPub}`, `pkcs7:${made.cert}`]);
    // Only the stranger's key (absent) or the RSA key with its certificate could open it: leave the certificate out.
    const root = path.join(dir, 'nofit');
    fs.mkdirSync(root);
    secretMount(root, { 'ec.pem': made.ec, 'junk.txt': made.otherPub });
    const r = run(['decrypt', '--annotations', descriptor, '--decryption-keys-path', root], encrypted);
    expect(r.status).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toContain(`${path.join(root, 'junk.txt')}: skipped: a public key; decryption needs the private key`);
    expect(r.stderr).toMatch(/layer schemes: (jwe, pkcs7|pkcs7, jwe)/);
    expect(r.stderr).toContain(`key files tried: ${path.join(root, 'ec.pem')}`);
    expect(r.stderr).toContain(`skipped as unusable: ${path.join(root, 'junk.txt')}`);
    expect(r.stderr).not.toContain(STAMP);
  });

  it('a keys directory with nothing usable says so rather than failing on the first bad file', () => {
    const { encrypted, descriptor } = encryptFor('none', [`jwe:${made.rsaPub}`]);
    const root = path.join(dir, 'allbad');
    fs.mkdirSync(root);
    fs.writeFileSync(path.join(root, 'empty'), '');
    fs.symlinkSync('missing', path.join(root, 'dangling'));
    sparse(path.join(root, 'big'), 2 * GiB);
    const r = run(['decrypt', '--annotations', descriptor, '--decryption-keys-path', root], encrypted);
    expect(r.status).toBe(1);
    for (const line of [
      `${path.join(root, 'empty')}: skipped: empty file`,
      `${path.join(root, 'dangling')}: skipped: dangling symbolic link to missing`,
      `${path.join(root, 'big')}: skipped: ${2 * GiB} bytes: larger than the 1 MiB limit for key files; not read`,
    ]) {
      expect(r.stderr).toContain(line);
    }
    expect(r.stderr).toContain('missing private key needed for decryption (layer schemes: jwe)');
    expect(r.stderr).toContain('key files tried: none');
  });
});
