/**
 * Decryption secrets never reach a log. The built decoder (`outrigger imgcrypt decrypt`, what
 * containerd runs as ctd-decoder) is run on an ocicrypt layer in every way that makes it talk:
 * success, a wrong password (given inline and from a file), a key that does not match, a
 * password-protected key in --decryption-keys-path without its password, a corrupted layer,
 * and the encrypt side. Its stderr (containerd's error text and the only log a processor has)
 * must never contain a password, any 32-character stretch of a private key's PEM body, or the
 * layer's symmetric key (found by unwrapping the JWE annotation here, base64 or hex).
 * Also: the payload containerd passes on fd 3 is capped at 16 MiB with an error that says so.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { flattenedDecrypt, generalDecrypt } from 'jose';
import { createPrivateKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinnedBinary } from './support/built-binary.ts';

const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

let dir: string;
let bin: string;
let dispose: (() => void) | undefined;
const password = `Pw-${randomBytes(9).toString('base64url')}`;
const wrongPassword = `Wrong-${randomBytes(9).toString('base64url')}`;
let keyFile: string;
let otherKeyFile: string;
let pubFile: string;
let encrypted: Buffer;
let descriptorFile: string;
/** Every text that must never appear in stderr. */
const secrets: { what: string; text: string }[] = [];

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

function pemBodyWindows(file: string, what: string): void {
  const body = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----') && !l.includes(':')).join('');
  for (let i = 0; i + 32 <= body.length; i += 16) secrets.push({ what: `${what} bytes ${i}..${i + 32}`, text: body.slice(i, i + 32) });
}

function run(args: readonly string[], input: Buffer, env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: Buffer; stderr: string } {
  const fullEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete fullEnv.NODE_OPTIONS;
  if (!('STREAM_PROCESSOR_MEDIATYPE' in env)) delete fullEnv.STREAM_PROCESSOR_MEDIATYPE;
  const r = spawnSync(bin, ['imgcrypt', ...args], { input, env: fullEnv, cwd: dir, maxBuffer: 1 << 26, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

function expectNoSecret(stderr: string, context: string): void {
  for (const s of secrets) expect(stderr.includes(s.text), `${context}: stderr contains ${s.what}:\n${stderr}`).toBe(false);
}

beforeAll(async () => {
  const pinned = pinnedBinary('outrigger');
  bin = pinned.path;
  dispose = pinned.dispose;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sec-imgcrypt-'));
  keyFile = path.join(dir, 'key.pem');
  otherKeyFile = path.join(dir, 'other.pem');
  pubFile = path.join(dir, 'pub.pem');
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-aes-256-cbc', '-pass', `pass:${password}`, '-out', keyFile]);
  openssl(['pkey', '-in', keyFile, '-passin', `pass:${password}`, '-pubout', '-out', pubFile]);
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', otherKeyFile]);
  // The decrypted form of the protected key, to scan for too (only this test ever writes it).
  const plainKeyFile = path.join(dir, 'key-plain.pem');
  openssl(['pkey', '-in', keyFile, '-passin', `pass:${password}`, '-out', plainKeyFile]);
  secrets.push({ what: 'the password', text: password }, { what: 'the wrong password', text: wrongPassword });
  pemBodyWindows(keyFile, 'the encrypted private key');
  pemBodyWindows(plainKeyFile, 'the private key');
  pemBodyWindows(otherKeyFile, 'the other private key');

  const layer = zlib.gzipSync(Buffer.concat([Buffer.from('secret layer content\n'), Buffer.alloc(4096, 7)]));
  descriptorFile = path.join(dir, 'descriptor.json');
  const enc = run(['encrypt', '--recipient', `jwe:${pubFile}`, '--media-type', LAYER, '--annotations', descriptorFile], layer);
  if (enc.status !== 0) throw new Error(`encrypt failed: ${enc.stderr}`);
  encrypted = enc.stdout;
  expectNoSecret(enc.stderr, 'encrypt');

  // The layer's symmetric key, from the JWE annotation, unwrapped here with jose.
  const descriptor = JSON.parse(fs.readFileSync(descriptorFile, 'utf8')) as { annotations: Record<string, string> };
  // One base64 JWE per comma-separated item; JSON serialization, general or flattened.
  const first = descriptor.annotations['org.opencontainers.image.enc.keys.jwe']!.split(',')[0]!;
  const jwe = JSON.parse(Buffer.from(first, 'base64').toString('utf8')) as Parameters<typeof generalDecrypt>[0] & Parameters<typeof flattenedDecrypt>[0];
  const privateKey = createPrivateKey({ key: fs.readFileSync(keyFile), passphrase: password });
  const { plaintext } = 'recipients' in jwe ? await generalDecrypt(jwe, privateKey) : await flattenedDecrypt(jwe, privateKey);
  const symkey = (JSON.parse(Buffer.from(plaintext).toString('utf8')) as { symkey: string }).symkey;
  const raw = Buffer.from(symkey, 'base64');
  expect(raw.length).toBe(32);
  secrets.push(
    { what: 'the layer key (base64)', text: symkey.slice(0, 24) },
    { what: 'the layer key (hex)', text: raw.toString('hex').slice(0, 24) },
    { what: 'the private options JSON', text: Buffer.from(plaintext).toString('utf8').slice(0, 24) },
  );
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  dispose?.();
});

describe('imgcrypt decrypt keeps secrets out of its messages', () => {
  it('success: plaintext out, nothing secret on stderr', () => {
    const r = run(['decrypt', '--annotations', descriptorFile, '--key', `${keyFile}:pass=${password}`], encrypted);
    expect(r.status, r.stderr).toBe(0);
    expect(zlib.gunzipSync(r.stdout).subarray(0, 21).toString()).toBe('secret layer content\n');
    expectNoSecret(r.stderr, 'success');
  });

  it('wrong password, inline and from a file', () => {
    const inline = run(['decrypt', '--annotations', descriptorFile, '--key', `${keyFile}:pass=${wrongPassword}`], encrypted);
    expect(inline.status).not.toBe(0);
    expect(inline.stderr.trim().length).toBeGreaterThan(0);
    expectNoSecret(inline.stderr, 'wrong inline password');
    const pwFile = path.join(dir, 'pw');
    fs.writeFileSync(pwFile, `${wrongPassword}\n`);
    const fromFile = run(['decrypt', '--annotations', descriptorFile, '--key', `${keyFile}:file=${pwFile}`], encrypted);
    expect(fromFile.status).not.toBe(0);
    expectNoSecret(fromFile.stderr, 'wrong password from a file');
  });

  it('a key that does not match, and a protected key in a keys dir without its password', () => {
    const other = run(['decrypt', '--annotations', descriptorFile, '--key', otherKeyFile], encrypted);
    expect(other.status).not.toBe(0);
    expectNoSecret(other.stderr, 'other key');
    const keysDir = path.join(dir, 'keys');
    fs.mkdirSync(keysDir, { recursive: true });
    fs.copyFileSync(keyFile, path.join(keysDir, 'protected.pem'));
    fs.copyFileSync(otherKeyFile, path.join(keysDir, 'other.pem'));
    const viaDir = run(['decrypt', '--annotations', descriptorFile, '--decryption-keys-path', keysDir], encrypted);
    expect(viaDir.status).not.toBe(0);
    expectNoSecret(viaDir.stderr, 'keys dir');
  });

  it('a corrupted layer with the right key fails without echoing key material', () => {
    const corrupt = Buffer.from(encrypted);
    corrupt[Math.floor(corrupt.length / 2)]! ^= 0x40;
    const r = run(['decrypt', '--annotations', descriptorFile, '--key', `${keyFile}:pass=${password}`], corrupt);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/HMAC|authenticat|corrupt|integrity/i);
    expectNoSecret(r.stderr, 'corrupt layer');
  });
});

describe('imgcrypt payload cap', () => {
  it('a payload over 16 MiB on fd 3 is refused with a message naming the limit', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, STREAM_PROCESSOR_MEDIATYPE: `${LAYER}+encrypted` };
    delete env.NODE_OPTIONS;
    const child = spawn(bin, ['imgcrypt', 'decrypt'], { env, cwd: dir, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout!.resume();
    const payload = child.stdio[3] as NodeJS.WritableStream & { on(e: 'error', f: () => void): void };
    payload.on('error', () => {}); // the decoder stops reading at the cap
    child.stdin!.on('error', () => {});
    payload.end(Buffer.alloc(17 * 1024 * 1024, 0x41));
    child.stdin!.end(encrypted);
    const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    expect(status).not.toBe(0);
    expect(stderr).toMatch(/payload on fd 3 is larger than 16777216 bytes/);
  });
});
