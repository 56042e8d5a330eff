/**
 * A real key provider for the imgcrypt tests, in both of ocicrypt's forms: a command (a small
 * Node program run through a shell wrapper) and a grpc-js server. Both "wrap" the options with
 * AES-256-GCM under a key only they know and log every request they get, so tests can check
 * what a provider is sent.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  keyProviderKeyWrapProtocolInputSchema,
  keyProviderKeyWrapProtocolOutputSchema,
} from '../../src/api/gen/keyprovider/keyprovider_pb.ts';
import { repoRoot } from './built-binary.ts';

/** The provider's logic, shared verbatim by the command and the server (kept dependency-free). */
const PROVIDER_LOGIC = `
const crypto = require('node:crypto');
const fs = require('node:fs');
function handle(requestBytes, secret, logFile) {
  const request = JSON.parse(Buffer.from(requestBytes).toString('utf8'));
  if (logFile) fs.appendFileSync(logFile, JSON.stringify(request) + '\\n');
  const key = crypto.createHash('sha256').update(secret).digest();
  if (request.op === 'keywrap') {
    const iv = crypto.randomBytes(12);
    const c = crypto.createCipheriv('aes-256-gcm', key, iv);
    const sealed = Buffer.concat([iv, c.update(Buffer.from(request.keywrapparams.optsdata, 'base64')), c.final(), c.getAuthTag()]);
    return { keywrapresults: { annotation: sealed.toString('base64') } };
  }
  if (request.op === 'keyunwrap') {
    const sealed = Buffer.from(request.keyunwrapparams.annotation, 'base64');
    const d = crypto.createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    const opts = Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]);
    return { keyunwrapresults: { optsdata: opts.toString('base64') } };
  }
  throw new Error('unknown op ' + request.op);
}
`;

export interface CommandProvider {
  /** Executable to put in the config's "cmd.path". */
  readonly path: string;
  readonly logFile: string;
}

/** Writes the command provider into `dir`; `secret` keys its wrapping. */
export function writeCommandProvider(dir: string, secret: string): CommandProvider {
  const script = path.join(dir, 'provider.cjs');
  const logFile = path.join(dir, 'provider-requests.log');
  fs.writeFileSync(
    script,
    `${PROVIDER_LOGIC}
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  try {
    process.stdout.write(JSON.stringify(handle(Buffer.concat(chunks), ${JSON.stringify(secret)}, ${JSON.stringify(logFile)})));
  } catch (e) {
    process.stderr.write('provider refused: ' + e.message);
    process.exitCode = 3;
  }
});
`,
  );
  const wrapper = path.join(dir, 'provider');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${path.join(repoRoot, 'node_modules/.bin/node')} ${script} "$@"\n`, { mode: 0o755 });
  return { path: wrapper, logFile };
}

export interface GrpcProvider {
  readonly address: string;
  readonly requests: unknown[];
  close(): Promise<void>;
}

/** Starts a grpc-js KeyProviderService on 127.0.0.1 (random port). */
export async function startGrpcProvider(secret: string): Promise<GrpcProvider> {
  const handle = new Function('require', `${PROVIDER_LOGIC}; return handle;`)(
    (await import('node:module')).createRequire(import.meta.url),
  ) as (bytes: Uint8Array, secret: string, logFile: string | undefined) => unknown;
  const requests: unknown[] = [];
  const server = new grpc.Server();
  const serialize = (bytes: Uint8Array): Buffer =>
    Buffer.from(toBinary(keyProviderKeyWrapProtocolOutputSchema, create(keyProviderKeyWrapProtocolOutputSchema, { KeyProviderKeyWrapProtocolOutput: bytes })));
  const deserialize = (bytes: Buffer): Uint8Array => fromBinary(keyProviderKeyWrapProtocolInputSchema, bytes).KeyProviderKeyWrapProtocolInput;
  const method = (name: string): grpc.MethodDefinition<Uint8Array, Uint8Array> => ({
    path: `/keyprovider.KeyProviderService/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (b) => Buffer.from(toBinary(keyProviderKeyWrapProtocolInputSchema, create(keyProviderKeyWrapProtocolInputSchema, { KeyProviderKeyWrapProtocolInput: b }))),
    requestDeserialize: deserialize,
    responseSerialize: serialize,
    responseDeserialize: (b) => fromBinary(keyProviderKeyWrapProtocolOutputSchema, b).KeyProviderKeyWrapProtocolOutput,
  });
  const implementation: grpc.handleUnaryCall<Uint8Array, Uint8Array> = (call, callback) => {
    try {
      requests.push(JSON.parse(Buffer.from(call.request).toString('utf8')));
      callback(null, Buffer.from(JSON.stringify(handle(call.request, secret, undefined))));
    } catch (error) {
      callback({ code: grpc.status.PERMISSION_DENIED, details: `provider refused: ${(error as Error).message}` });
    }
  };
  server.addService({ WrapKey: method('WrapKey'), UnWrapKey: method('UnWrapKey') }, { WrapKey: implementation, UnWrapKey: implementation });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    address: `127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
