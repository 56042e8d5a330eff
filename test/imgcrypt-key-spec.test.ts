/**
 * `--key FILE[:pass=PW|:file=PWFILE|:fd=N|:PW]` passwords, taken exactly as ocicrypt's helpers take
 * them (helpers/parse_helpers.go): `pass=` and the bare form verbatim; `file=` every byte of the
 * file, no newline or CR removed; `fd=` one read of at most 64 bytes, nothing removed, end of file
 * an error, the fd closed afterwards. Keys are real legacy encrypted PEM (`Proc-Type: 4,ENCRYPTED`,
 * the form ocicrypt decrypts) and PKCS#8 encrypted PEM made by openssl, some with passwords that
 * end in LF or CR LF (openssl's `env:` source keeps them). Messages never carry a password.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecryptConfigBuilder } from '../processors/imgcrypt/decrypt-config.ts';
import { cryptImage } from '../processors/imgcrypt/image-crypt.ts';
import { addKeySpecs, FD_PASSWORD_MAX, MAX_PASSWORD_FILE_BYTES, parseKeySpec, redactKeySpec } from '../processors/imgcrypt/key-spec.ts';
import { parseRecipients } from '../processors/imgcrypt/recipients.ts';
import { builtBinary } from './support/built-binary.ts';
import { readManifests, writeLayout } from './support/imgcrypt-layout.ts';

const PW = 'Corr3ct-h0rse:battery';
const LONG = 'L'.repeat(FD_PASSWORD_MAX);
let dir: string;
let plain: string;
let pub: string;
/** Legacy encrypted PEM of the same RSA key, by password. */
const legacy = new Map<string, string>();
let pkcs8: string;
let counter = 0;

function openssl(args: string[], env: Record<string, string> = {}): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** The plain key re-encrypted as legacy PEM with `password` (any bytes, via openssl's env: source). */
function legacyKey(password: string): string {
  const file = path.join(dir, `legacy-${legacy.size}.pem`);
  openssl(['rsa', '-traditional', '-aes256', '-in', plain, '-passout', 'env:KEY_PW', '-out', file], { KEY_PW: password });
  expect(fs.readFileSync(file, 'utf8')).toContain('Proc-Type: 4,ENCRYPTED');
  legacy.set(password, file);
  return file;
}

function pwFile(content: string | Buffer): string {
  const file = path.join(dir, `pw-${counter++}`);
  fs.writeFileSync(file, content);
  return file;
}

/** Adds one spec to a fresh builder: the loaded keys' sources, or the error message. */
function load(spec: string): { keys: string[] } | { error: string } {
  const builder = new DecryptConfigBuilder();
  try {
    addKeySpecs(builder, [spec]);
  } catch (error) {
    return { error: (error as Error).message };
  }
  return { keys: builder.build().privateKeys.map((k) => k.source) };
}

function expectLoads(spec: string, file: string): void {
  expect(load(spec)).toEqual({ keys: [file] });
}

function expectWrongPassword(spec: string): string {
  const r = load(spec);
  expect(r).toHaveProperty('error');
  const message = (r as { error: string }).error;
  expect(message).toContain('Wrong password: could not decrypt private key');
  return message;
}

/** Opens a file holding `content` and returns the fd (the spec's `fd=` reads and closes it). */
function fdOf(content: string | Buffer): number {
  return fs.openSync(pwFile(content), 'r');
}

function isOpen(fd: number): boolean {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgcrypt-keyspec-'));
  plain = path.join(dir, 'plain.pem');
  pub = path.join(dir, 'pub.pem');
  openssl(['genrsa', '-traditional', '-out', plain, '2048']);
  openssl(['rsa', '-in', plain, '-pubout', '-out', pub]);
  for (const password of [PW, `${PW}\n`, `${PW}\r\n`, LONG]) legacyKey(password);
  pkcs8 = path.join(dir, 'pkcs8-enc.pem');
  openssl(['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-in', plain, '-passout', `pass:${PW}`, '-out', pkcs8]);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('pass= and the bare form: the text as given', () => {
  it('decrypts with pass=PW and with FILE:PW (a password holding a colon included)', () => {
    const key = legacy.get(PW)!;
    expectLoads(`${key}:pass=${PW}`, key);
    expectLoads(`${key}:${PW}`, key);
    expectLoads(`${pkcs8}:pass=${PW}`, pkcs8);
  });

  it('takes a trailing newline given inline as part of the password', () => {
    expectLoads(`${legacy.get(`${PW}\n`)!}:pass=${PW}\n`, legacy.get(`${PW}\n`)!);
    expectWrongPassword(`${legacy.get(PW)!}:pass=${PW}\n`);
  });

  it('an empty password is a password (wrong), not a missing one', () => {
    expectWrongPassword(`${legacy.get(PW)!}:pass=`);
    expectWrongPassword(`${legacy.get(PW)!}:`);
    expect(load(legacy.get(PW)!)).toEqual({ error: `${legacy.get(PW)!}: Missing password for encrypted private key` });
  });

  it('a password on a key that is not encrypted is ignored', () => {
    expectLoads(`${plain}:pass=whatever`, plain);
  });
});

describe('file=: every byte of the file', () => {
  it('a file without a newline holds the password', () => {
    expectLoads(`${legacy.get(PW)!}:file=${pwFile(PW)}`, legacy.get(PW)!);
    expectLoads(`${pkcs8}:file=${pwFile(PW)}`, pkcs8);
  });

  it('a trailing LF is part of the password: right for a key made with it, wrong (with a hint) for one made without', () => {
    const withLf = pwFile(`${PW}\n`);
    expectLoads(`${legacy.get(`${PW}\n`)!}:file=${withLf}`, legacy.get(`${PW}\n`)!);
    const message = expectWrongPassword(`${legacy.get(PW)!}:file=${withLf}`);
    expect(message).toContain('the password file ends with a newline, which is part of the password as ocicrypt reads it');
    expect(message).not.toContain(PW);
  });

  it('CR LF is kept too', () => {
    const withCrLf = pwFile(`${PW}\r\n`);
    expectLoads(`${legacy.get(`${PW}\r\n`)!}:file=${withCrLf}`, legacy.get(`${PW}\r\n`)!);
    expect(expectWrongPassword(`${legacy.get(PW)!}:file=${withCrLf}`)).toContain('ends with CR LF');
    expectWrongPassword(`${legacy.get(`${PW}\n`)!}:file=${withCrLf}`);
  });

  it('more than 64 bytes from a file are all used (the 64-byte limit is fd= only)', () => {
    const key = legacyKey(`${LONG}tail`);
    expectLoads(`${key}:file=${pwFile(`${LONG}tail`)}`, key);
  });

  it('a missing or non-UTF-8 password file is an error naming the file, not the password', () => {
    const key = legacy.get(PW)!;
    expect(load(`${key}:file=${dir}/nope`)).toEqual({ error: expect.stringContaining(`--key ${key}:file=${dir}/nope: cannot read the password file ${dir}/nope`) });
    const latin1 = pwFile(Buffer.from([0x70, 0xe9, 0x0a]));
    expect(load(`${key}:file=${latin1}`)).toEqual({ error: `--key ${key}:file=${latin1}: the password in ${latin1} is not UTF-8 text` });
  });

  it('a password file that never ends (/dev/zero) or is over 64 KiB is refused, not read whole', () => {
    const key = legacy.get(PW)!;
    expect(load(`${key}:file=/dev/zero`)).toEqual({ error: `--key ${key}:file=/dev/zero: cannot read the password file /dev/zero: more than 65536 bytes: not a password` });
    const big = pwFile(Buffer.alloc(MAX_PASSWORD_FILE_BYTES + 1, 0x61));
    expect(load(`${key}:file=${big}`)).toEqual({ error: `--key ${key}:file=${big}: cannot read the password file ${big}: more than 65536 bytes: not a password` });
    const atCap = pwFile(Buffer.alloc(MAX_PASSWORD_FILE_BYTES, 0x61));
    expect(parseKeySpec(`${key}:file=${atCap}`)).toMatchObject({ password: 'a'.repeat(MAX_PASSWORD_FILE_BYTES) });
  });

  it('property: the password is exactly the file content, whatever it holds', () => {
    const key = legacy.get(PW)!;
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (password) => {
        const parsed = parseKeySpec(`${key}:file=${pwFile(password)}`);
        expect(parsed).toEqual({ kind: 'file', file: key, password, passwordSource: 'file' });
      }),
      { numRuns: 100 },
    );
  });

  it('property: pass= and the bare form give the text after the key file, colons and all', () => {
    const key = legacy.get(PW)!;
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (password) => {
        expect(parseKeySpec(`${key}:pass=${password}`)).toEqual({ kind: 'file', file: key, password, passwordSource: 'pass' });
        if (!/^(pass|file|fd)=/.test(password)) expect(parseKeySpec(`${key}:${password}`)).toEqual({ kind: 'file', file: key, password, passwordSource: 'inline' });
      }),
      { numRuns: 200 },
    );
  });
});

describe('fd=: one read of at most 64 bytes', () => {
  it('reads the password, keeps a trailing LF or CR LF, and closes the fd', () => {
    const fd = fdOf(PW);
    expectLoads(`${legacy.get(PW)!}:fd=${fd}`, legacy.get(PW)!);
    expect(isOpen(fd)).toBe(false);
    expectLoads(`${legacy.get(`${PW}\n`)!}:fd=${fdOf(`${PW}\n`)}`, legacy.get(`${PW}\n`)!);
    expectLoads(`${legacy.get(`${PW}\r\n`)!}:fd=${fdOf(`${PW}\r\n`)}`, legacy.get(`${PW}\r\n`)!);
    expect(expectWrongPassword(`${legacy.get(PW)!}:fd=${fdOf(`${PW}\n`)}`)).toContain('the password fd ends with a newline');
  });

  it('reads only the first 64 bytes, as ocicrypt does', () => {
    // 64 bytes then a newline: the newline is never read, so the 64-byte password is right.
    expectLoads(`${legacy.get(LONG)!}:fd=${fdOf(`${LONG}\n`)}`, legacy.get(LONG)!);
    expectLoads(`${legacy.get(LONG)!}:fd=${fdOf(`${LONG}more`)}`, legacy.get(LONG)!);
    expect(parseKeySpec(`${plain}:fd=${fdOf('x'.repeat(100))}`)).toMatchObject({ password: 'x'.repeat(64) });
  });

  it('an fd at end of file, a closed fd and a non-number are errors', () => {
    const key = legacy.get(PW)!;
    const empty = fdOf('');
    expect(load(`${key}:fd=${empty}`)).toEqual({ error: `--key ${key}:fd=${empty}: no password on fd ${empty} (end of file)` });
    expect(isOpen(empty)).toBe(false);
    expect(load(`${key}:fd=${empty}`)).toEqual({ error: expect.stringContaining(`--key ${key}:fd=${empty}: cannot read the password from fd ${empty}: EBADF`) });
    for (const bad of ['', '-1', 'x', '3.5']) {
      expect(load(`${key}:fd=${bad}`)).toEqual({ error: `--key ${key}:fd=${bad}: fd=${bad} is not a file descriptor number` });
    }
  });

  it('64 bytes that end inside a UTF-8 character are refused, saying only 64 bytes are read', () => {
    const key = legacy.get(PW)!;
    const fd = fdOf(`${'a'.repeat(63)}é`);
    expect(load(`${key}:fd=${fd}`)).toEqual({
      error: `--key ${key}:fd=${fd}: the password read from fd ${fd} is not UTF-8 text (only the first 64 bytes are read, as ocicrypt does)`,
    });
  });
});

describe('messages hide inline passwords', () => {
  it('a missing key file given with pass= or a bare password does not echo the password', () => {
    const r = load(`${dir}/absent.pem:pass=${PW}`);
    expect(r).toEqual({ error: `--key ${dir}/absent.pem:<password hidden>: no such key file ${dir}/absent.pem` });
    expect(redactKeySpec(`k.pem:${PW}`)).toBe('k.pem:<password hidden>');
    expect(redactKeySpec('k.pem:file=/run/pw')).toBe('k.pem:file=/run/pw');
    expect(redactKeySpec('k.pem:fd=3')).toBe('k.pem:fd=3');
    expect(redactKeySpec('provider:kp:opts')).toBe('provider:kp:opts');
  });
});

describe('through the CLI: decrypt-image --key FILE:fd=3 from a pipe', () => {
  async function decryptWithFd3(key: string, password: string): Promise<{ code: number | null; stderr: string; out: string }> {
    const src = path.join(dir, `cli-src-${counter++}`);
    await writeLayout(src, [{ layers: [{ compression: 'gzip', files: { a: 'fd\n' } }] }]);
    const enc = path.join(dir, `cli-enc-${counter++}`);
    await cryptImage({ src, dst: enc, operation: { kind: 'encrypt', ec: parseRecipients([`jwe:${pub}`]) } });
    const out = path.join(dir, `cli-out-${counter++}`);
    const child = spawn(builtBinary(), ['imgcrypt', 'decrypt-image', '--key', `${key}:fd=3`, enc, out], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout!.resume();
    const fd3 = child.stdio[3] as NodeJS.WritableStream;
    fd3.end(password);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (code === 0) expect(readManifests(out)[0]!.manifest.layers[0]!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    return { code, stderr, out };
  }

  it('decrypts with the password from the pipe; a trailing newline makes it wrong, with the hint and no password shown', async () => {
    const ok = await decryptWithFd3(legacy.get(PW)!, PW);
    expect(ok.code, ok.stderr).toBe(0);
    const nl = await decryptWithFd3(legacy.get(PW)!, `${PW}\n`);
    expect(nl.code).not.toBe(0);
    expect(nl.stderr).toContain('Wrong password: could not decrypt private key');
    expect(nl.stderr).toContain('the password fd ends with a newline');
    expect(nl.stderr).not.toContain(PW);
    const withNl = await decryptWithFd3(legacy.get(`${PW}\n`)!, `${PW}\n`);
    expect(withNl.code, withNl.stderr).toBe(0);
  });
});
