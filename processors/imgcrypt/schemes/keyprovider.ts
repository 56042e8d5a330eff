/**
 * ocicrypt's key-provider protocol (keywrap/keyprovider, docs/keyprovider.md; imgcrypt.md §4):
 * each provider named in the JSON file at $OCICRYPT_KEYPROVIDER_CONFIG becomes a wrapper with
 * annotation `provider.<name>`. A provider is either a command (JSON request on stdin, JSON reply
 * on stdout) or a gRPC server (`/keyprovider.KeyProviderService/WrapKey` and `UnWrapKey`, the
 * same JSON in a bytes field). Wrapping runs only for providers the EncryptConfig names;
 * unwrapping is tried whenever the annotation is present, as ocicrypt does.
 *
 * Deliberate difference: ocicrypt hands the provider its whole DecryptConfig, private keys
 * included. We send only the key-provider parameters (and, when wrapping, the public recipients),
 * so keys from the keys directory never leave this process.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  keyProviderKeyWrapProtocolInputSchema,
  keyProviderKeyWrapProtocolOutputSchema,
} from '../../../src/api/gen/keyprovider/keyprovider_pb.ts';
import type { DecryptConfig, EncryptConfig, KeyWrapper } from '../key-wrapper.ts';

export const KEYPROVIDER_CONFIG_ENV = 'OCICRYPT_KEYPROVIDER_CONFIG';

export interface KeyProviderTls {
  readonly rootCaFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly serverName?: string;
  readonly insecureSkipVerify?: boolean;
}

export type KeyProviderInvocation =
  | { readonly kind: 'cmd'; readonly path: string; readonly args: readonly string[] }
  | { readonly kind: 'grpc'; readonly address: string; readonly tls?: KeyProviderTls }
  | { readonly kind: 'invalid'; readonly reason: string };

export interface KeyProviderConfig {
  readonly providers: ReadonlyMap<string, KeyProviderInvocation>;
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function parseInvocation(entry: unknown): KeyProviderInvocation {
  const obj = asRecord(entry);
  if (!obj) return { kind: 'invalid', reason: 'the entry is not a JSON object' };
  const cmd = asRecord(obj.cmd);
  if (cmd) {
    if (typeof cmd.path !== 'string' || cmd.path === '') return { kind: 'invalid', reason: '"cmd" has no "path"' };
    const args = Array.isArray(cmd.args) ? cmd.args.filter((a): a is string => typeof a === 'string') : [];
    return { kind: 'cmd', path: cmd.path, args };
  }
  if (typeof obj.grpc === 'string' && obj.grpc !== '') {
    const tlsJson = asRecord(obj['grpc-tls']);
    const str = (key: string): string | undefined => (typeof tlsJson?.[key] === 'string' ? (tlsJson[key] as string) : undefined);
    const tls: KeyProviderTls | undefined = tlsJson
      ? {
          ...(str('root-ca-file') ? { rootCaFile: str('root-ca-file') } : {}),
          ...(str('cert-file') ? { certFile: str('cert-file') } : {}),
          ...(str('key-file') ? { keyFile: str('key-file') } : {}),
          ...(str('server-name') ? { serverName: str('server-name') } : {}),
          ...(tlsJson['insecure-skip-verify'] === true ? { insecureSkipVerify: true } : {}),
        }
      : undefined;
    return { kind: 'grpc', address: obj.grpc, ...(tls ? { tls } : {}) };
  }
  const hint = 'path' in obj ? ' ("path" must sit inside a "cmd" object; the first example in ocicrypt\'s docs/keyprovider.md is wrong)' : '';
  return { kind: 'invalid', reason: `neither "cmd" nor "grpc" is set${hint}` };
}

/** Parses the provider config file's text; throws with the reason when it is not usable JSON. */
export function parseKeyProviderConfig(text: string): KeyProviderConfig {
  const json = asRecord(JSON.parse(text));
  const providers = new Map<string, KeyProviderInvocation>();
  const entries = asRecord(json?.['key-providers']);
  if (!entries) throw new Error('no "key-providers" object');
  for (const [name, entry] of Object.entries(entries)) providers.set(name, parseInvocation(entry));
  return { providers };
}

/**
 * Reads $OCICRYPT_KEYPROVIDER_CONFIG: no variable or no file means no providers; a malformed
 * file is reported through `warn` and ignored, as ocicrypt does.
 */
export function loadKeyProviderConfig(env: NodeJS.ProcessEnv = process.env, warn: (line: string) => void = () => {}): KeyProviderConfig {
  const file = env[KEYPROVIDER_CONFIG_ENV];
  if (!file) return { providers: new Map() };
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') warn(`${KEYPROVIDER_CONFIG_ENV}=${file}: ${(error as Error).message}; no key providers`);
    return { providers: new Map() };
  }
  try {
    return parseKeyProviderConfig(text);
  } catch (error) {
    warn(`${KEYPROVIDER_CONFIG_ENV}=${file}: ignored: ${(error as Error).message}`);
    return { providers: new Map() };
  }
}

const b64 = (bytes: Uint8Array | string): string => Buffer.from(bytes).toString('base64');

/** ocicrypt's EncryptConfig JSON (`Parameters` of [][]byte as base64) restricted to public material. */
function encryptConfigJson(ec: EncryptConfig): unknown {
  const parameters: Record<string, string[]> = {};
  const add = (key: string, values: readonly string[]): void => {
    if (values.length > 0) parameters[key] = [...values];
  };
  add('pubkeys', ec.jwe.map((r) => b64(r.key.export({ type: 'spki', format: 'pem' }) as string)));
  add('x509s', ec.pkcs7.map((c) => b64(c.cert.toString())));
  add('gpg-recipients', ec.pgpRecipients.map((r) => b64(r)));
  for (const [name, params] of Object.entries(ec.providers)) parameters[name] = [b64(params)];
  return { Parameters: parameters, DecryptConfig: { Parameters: {} } };
}

function decryptConfigJson(dc: DecryptConfig): unknown {
  const parameters: Record<string, string[]> = {};
  for (const [name, params] of Object.entries(dc.providerParameters)) parameters[name] = [b64(params)];
  return { Parameters: parameters };
}

export function wrapRequest(ec: EncryptConfig, optsData: Uint8Array): Buffer {
  return Buffer.from(
    JSON.stringify({ op: 'keywrap', keywrapparams: { ec: encryptConfigJson(ec), optsdata: b64(optsData) }, keyunwrapparams: { annotation: null } }),
  );
}

export function unwrapRequest(dc: DecryptConfig, annotation: Uint8Array): Buffer {
  return Buffer.from(
    JSON.stringify({ op: 'keyunwrap', keywrapparams: {}, keyunwrapparams: { dc: decryptConfigJson(dc), annotation: b64(annotation) } }),
  );
}

/** Pulls `<section>.<field>` (standard base64) out of a provider's JSON reply. */
export function replyField(reply: Uint8Array, section: 'keywrapresults' | 'keyunwrapresults', field: 'annotation' | 'optsdata'): Buffer {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(reply).toString('utf8'));
  } catch (error) {
    throw new Error(`the reply is not JSON (${(error as Error).message}): ${JSON.stringify(Buffer.from(reply).subarray(0, 200).toString('utf8'))}`);
  }
  const value = asRecord(asRecord(json)?.[section])?.[field];
  if (typeof value !== 'string' || value === '') throw new Error(`the reply has no ${section}.${field}`);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) throw new Error(`${section}.${field} is not standard base64`);
  return Buffer.from(value, 'base64');
}

/** Runs a command provider: request on stdin, reply on stdout; a non-zero exit carries stderr. */
export function runCommandProvider(path: string, args: readonly string[], request: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(path, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error) => reject(new Error(`cannot run ${path}: ${error.message}`)));
    // A provider that exits without reading its stdin makes the write fail with EPIPE; its exit status tells the story.
    child.stdin.on('error', () => {});
    child.on('close', (code, signal) => {
      if (code === 0) resolve(Buffer.concat(out));
      else {
        const stderr = Buffer.concat(err).toString('utf8').trim();
        reject(new Error(`${path} ${signal ? `was killed by ${signal}` : `exited with ${code}`}${stderr ? `: ${stderr}` : ''}`));
      }
    });
    child.stdin.end(request);
  });
}

function grpcCredentials(tls: KeyProviderTls | undefined): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  const read = (file: string | undefined): Buffer | null => (file ? fs.readFileSync(file) : null);
  return grpc.credentials.createSsl(read(tls.rootCaFile), read(tls.keyFile), read(tls.certFile), {
    ...(tls.insecureSkipVerify ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : {}),
  });
}

/** One unary call to a gRPC provider; the JSON rides in field 1 of both messages. */
export function callGrpcProvider(
  address: string,
  tls: KeyProviderTls | undefined,
  method: 'WrapKey' | 'UnWrapKey',
  request: Uint8Array,
  timeoutMs = 60_000,
): Promise<Buffer> {
  const options: grpc.ChannelOptions = tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName } : {};
  const client = new grpc.Client(address, grpcCredentials(tls), options);
  const path = `/keyprovider.KeyProviderService/${method}`;
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (bytes: Uint8Array) => Buffer.from(toBinary(keyProviderKeyWrapProtocolInputSchema, create(keyProviderKeyWrapProtocolInputSchema, { KeyProviderKeyWrapProtocolInput: bytes }))),
      (bytes: Buffer) => Buffer.from(fromBinary(keyProviderKeyWrapProtocolOutputSchema, bytes).KeyProviderKeyWrapProtocolOutput),
      request,
      { deadline: Date.now() + timeoutMs },
      (error, reply) => {
        if (error) reject(new Error(`${path} at ${address}: ${error.details || error.message}`));
        else resolve(reply ?? Buffer.alloc(0));
      },
    );
  }).finally(() => client.close());
}

async function invoke(name: string, invocation: KeyProviderInvocation, op: 'wrap' | 'unwrap', request: Uint8Array): Promise<Buffer> {
  switch (invocation.kind) {
    case 'cmd':
      return await runCommandProvider(invocation.path, invocation.args, request);
    case 'grpc':
      return await callGrpcProvider(invocation.address, invocation.tls, op === 'wrap' ? 'WrapKey' : 'UnWrapKey', request);
    case 'invalid':
      throw new Error(`key provider "${name}" has an unsupported invocation in $${KEYPROVIDER_CONFIG_ENV}: ${invocation.reason}`);
  }
}

export function keyProviderWrapper(name: string, invocation: KeyProviderInvocation): KeyWrapper {
  const describe = invocation.kind === 'cmd' ? `command ${invocation.path}` : invocation.kind === 'grpc' ? `gRPC ${invocation.address}` : 'invalid config';
  return {
    annotationId: `provider.${name}`,
    async wrap(ec: EncryptConfig, privateOptionsJson: Uint8Array): Promise<Uint8Array | undefined> {
      if (ec.providers[name] === undefined) return undefined;
      try {
        const reply = await invoke(name, invocation, 'wrap', wrapRequest(ec, privateOptionsJson));
        return replyField(reply, 'keywrapresults', 'annotation');
      } catch (error) {
        throw new Error(`key provider "${name}" (${describe}): wrap failed: ${(error as Error).message}`);
      }
    },
    noPossibleKeys(): boolean {
      return false;
    },
    async unwrap(dc: DecryptConfig, blob: Uint8Array): Promise<Uint8Array> {
      try {
        const reply = await invoke(name, invocation, 'unwrap', unwrapRequest(dc, blob));
        return replyField(reply, 'keyunwrapresults', 'optsdata');
      } catch (error) {
        throw new Error(`key provider "${name}" (${describe}): unwrap failed: ${(error as Error).message}`);
      }
    },
  };
}

/** One wrapper per provider in $OCICRYPT_KEYPROVIDER_CONFIG (read on every call; call once per run). */
export function keyProviderWrappers(): readonly KeyWrapper[] {
  const config = loadKeyProviderConfig(process.env, (line) => process.stderr.write(`outrigger imgcrypt: ${line}\n`));
  return [...config.providers].map(([name, invocation]) => keyProviderWrapper(name, invocation));
}
