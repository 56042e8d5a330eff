/**
 * The `--key` forms of ctr-enc and skopeo (imgcrypt.md §5): `file`, `file:pass=<pw>`,
 * `file:file=<pwfile>`, `file:fd=<n>`, `file:<pw>`, and `provider:<name>[:<params>]`. ocicrypt
 * splits on `:` and takes a password only when there are exactly two parts, which breaks paths and
 * passwords holding one; here the longest existing prefix is the file, so both work.
 *
 * Passwords are taken exactly as ocicrypt's helpers take them (containers/ocicrypt
 * helpers/parse_helpers.go, and imgcrypt's copy for ctr-enc): `pass=` and the bare form are the
 * text as given; `file=` is every byte of the file, with no newline or CR removed; `fd=` is what one
 * read(2) of at most 64 bytes returns, nothing removed, an immediate end of file being an error,
 * and the fd is closed afterwards. So a password file written by `echo` carries a newline that is
 * part of the password; when such a password is wrong, the error says so.
 */
import fs from 'node:fs';
import type { DecryptConfigBuilder } from './decrypt-config.ts';
import { KeyPasswordError } from './key-material.ts';

/** Where a password came from, for the hint when it is wrong. */
export type PasswordSource = 'pass' | 'inline' | 'file' | 'fd';

export type KeySpec =
  | { readonly kind: 'file'; readonly file: string; readonly password?: string; readonly passwordSource?: PasswordSource }
  | { readonly kind: 'provider'; readonly name: string; readonly params: string };

/** ocicrypt reads an fd password with one 64-byte read. */
export const FD_PASSWORD_MAX = 64;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Passwords reach OpenSSL and OpenPGP as UTF-8 text: bytes that are not UTF-8 would be changed on the way, so they are refused. */
function passwordText(bytes: Uint8Array, where: string, label: string, note = ''): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new Error(`--key ${label}: the password ${where} is not UTF-8 text${note}`);
  }
}

/** The spec for messages, with an inline password hidden: only `file=` and `fd=` are safe to show. */
export function redactKeySpec(spec: string): string {
  if (spec.startsWith('provider:')) return spec;
  const colon = spec.indexOf(':');
  if (colon < 0) return spec;
  const rest = spec.slice(colon + 1);
  return /^(file|fd)=/.test(rest) ? spec : `${spec.slice(0, colon)}:<password hidden>`;
}

function readFdPassword(fdText: string, label: string): string {
  // Digits only (Go's Atoi also takes a sign): `fd=` alone must not become fd 0.
  if (!/^\+?\d{1,9}$/.test(fdText)) throw new Error(`--key ${label}: fd=${fdText} is not a file descriptor number`);
  const fd = Number(fdText);
  const buf = Buffer.alloc(FD_PASSWORD_MAX);
  let n: number;
  try {
    n = fs.readSync(fd, buf, 0, FD_PASSWORD_MAX, null);
  } catch (err) {
    throw new Error(`--key ${label}: cannot read the password from fd ${fd}: ${(err as Error).message}`);
  } finally {
    // ocicrypt closes the fd once read; stdio stays open because Node's own streams use it.
    if (fd > 2) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed or never open: the read above reported it
      }
    }
  }
  if (n === 0) throw new Error(`--key ${label}: no password on fd ${fd} (end of file)`);
  const note = n === FD_PASSWORD_MAX ? ` (only the first ${FD_PASSWORD_MAX} bytes are read, as ocicrypt does)` : '';
  return passwordText(buf.subarray(0, n), `read from fd ${fd}`, label, note);
}

/** No password is this long; the cap only keeps `file=/dev/zero` from reading without end. */
export const MAX_PASSWORD_FILE_BYTES = 64 * 1024;

/** The whole file, as ocicrypt's os.ReadFile, but at most MAX_PASSWORD_FILE_BYTES. */
function readPasswordFile(file: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(MAX_PASSWORD_FILE_BYTES + 1);
    let length = 0;
    while (length < buf.length) {
      const n = fs.readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) return Buffer.from(buf.subarray(0, length));
      length += n;
    }
    throw new Error(`more than ${MAX_PASSWORD_FILE_BYTES} bytes: not a password`);
  } finally {
    fs.closeSync(fd);
  }
}

/** `option` is what follows the key file's `:`; `keyFile` names the spec in messages without the password. */
function passwordFrom(option: string, keyFile: string): { password: string; passwordSource: PasswordSource } {
  const label = `${keyFile}:${option}`;
  if (option.startsWith('pass=')) return { password: option.slice('pass='.length), passwordSource: 'pass' };
  if (option.startsWith('file=')) {
    const file = option.slice('file='.length);
    let bytes: Buffer;
    try {
      bytes = readPasswordFile(file);
    } catch (err) {
      throw new Error(`--key ${label}: cannot read the password file ${file}: ${(err as Error).message}`);
    }
    return { password: passwordText(bytes, `in ${file}`, label), passwordSource: 'file' };
  }
  if (option.startsWith('fd=')) return { password: readFdPassword(option.slice('fd='.length), label), passwordSource: 'fd' };
  return { password: option, passwordSource: 'inline' };
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

export function parseKeySpec(spec: string): KeySpec {
  if (spec.startsWith('provider:')) {
    const rest = spec.slice('provider:'.length);
    const colon = rest.indexOf(':');
    const name = colon < 0 ? rest : rest.slice(0, colon);
    if (name === '') throw new Error(`--key ${spec}: provider name missing (provider:<name>[:<params>])`);
    return { kind: 'provider', name, params: colon < 0 ? 'Enabled' : rest.slice(colon + 1) };
  }
  if (isFile(spec)) return { kind: 'file', file: spec };
  for (let at = spec.lastIndexOf(':'); at > 0; at = spec.lastIndexOf(':', at - 1)) {
    const file = spec.slice(0, at);
    if (isFile(file)) return { kind: 'file', file, ...passwordFrom(spec.slice(at + 1), file) };
  }
  const first = spec.includes(':') ? spec.slice(0, spec.indexOf(':')) : spec;
  throw new Error(`--key ${redactKeySpec(spec)}: no such key file ${first}`);
}

/** Applies `--key` specs to a builder; a bad file or password is fatal, naming the spec. */
export function addKeySpecs(builder: DecryptConfigBuilder, specs: readonly string[]): void {
  for (const spec of specs) {
    const parsed = parseKeySpec(spec);
    if (parsed.kind === 'provider') {
      builder.addProvider(parsed.name, parsed.params);
      continue;
    }
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(parsed.file);
    } catch (err) {
      throw new Error(`--key ${parsed.file}: cannot read: ${(err as Error).message}`);
    }
    try {
      builder.addKeyFile(parsed.file, bytes, parsed.password);
    } catch (err) {
      throw withNewlineHint(err as Error, parsed);
    }
  }
}

/**
 * A wrong password read from a file or fd that ends in a newline was most likely written by `echo`:
 * say that the newline counts (without showing the password), as it does for ocicrypt.
 */
function withNewlineHint(err: Error, parsed: Extract<KeySpec, { kind: 'file' }>): Error {
  const cause = err.cause instanceof KeyPasswordError ? err.cause : err instanceof KeyPasswordError ? err : undefined;
  const { password, passwordSource } = parsed;
  if (cause === undefined || password === undefined || (passwordSource !== 'file' && passwordSource !== 'fd') || !/[\r\n]$/.test(password)) return err;
  const ending = password.endsWith('\r\n') ? 'CR LF' : password.endsWith('\n') ? 'a newline' : 'a CR';
  const where = passwordSource === 'file' ? 'file' : 'fd';
  return new Error(`${err.message} (the password ${where} ends with ${ending}, which is part of the password as ocicrypt reads it; write it without one, e.g. printf '%s')`, { cause: err });
}
