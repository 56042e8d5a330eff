/**
 * The `--key` forms of ctr-enc and skopeo (imgcrypt.md §5): `file`, `file:pass=<pw>`,
 * `file:file=<pwfile>`, `file:fd=<n>` (at most 64 bytes), `file:<pw>`, and
 * `provider:<name>[:<params>]`. ocicrypt splits on the first `:`, which breaks paths holding one;
 * here the longest existing prefix is the file, so such paths work.
 */
import fs from 'node:fs';
import type { DecryptConfigBuilder } from './decrypt-config.ts';

export type KeySpec =
  | { readonly kind: 'file'; readonly file: string; readonly password?: string }
  | { readonly kind: 'provider'; readonly name: string; readonly params: string };

const FD_PASSWORD_MAX = 64;

/** Password files and fds usually end with a newline that is not part of the password. */
function chompNewline(text: string): string {
  return text.replace(/\r?\n$/, '');
}

function readFdPassword(fdText: string, spec: string): string {
  const fd = Number(fdText);
  if (!Number.isInteger(fd) || fd < 0) throw new Error(`--key ${spec}: fd=${fdText} is not a file descriptor number`);
  const buf = Buffer.alloc(FD_PASSWORD_MAX);
  let n: number;
  try {
    n = fs.readSync(fd, buf, 0, FD_PASSWORD_MAX, null);
  } catch (err) {
    throw new Error(`--key ${spec}: cannot read the password from fd ${fd}: ${(err as Error).message}`);
  }
  return chompNewline(buf.subarray(0, n).toString('utf8'));
}

function passwordFrom(option: string, spec: string): string {
  if (option.startsWith('pass=')) return option.slice('pass='.length);
  if (option.startsWith('file=')) {
    const file = option.slice('file='.length);
    try {
      return chompNewline(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`--key ${spec}: cannot read the password file ${file}: ${(err as Error).message}`);
    }
  }
  if (option.startsWith('fd=')) return readFdPassword(option.slice('fd='.length), spec);
  return option;
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
    if (isFile(file)) return { kind: 'file', file, password: passwordFrom(spec.slice(at + 1), spec) };
  }
  const first = spec.includes(':') ? spec.slice(0, spec.indexOf(':')) : spec;
  throw new Error(`--key ${spec}: no such key file ${first}`);
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
    builder.addKeyFile(parsed.file, bytes, parsed.password);
  }
}
