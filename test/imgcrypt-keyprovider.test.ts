import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  keyProviderWrapper,
  loadKeyProviderConfig,
  parseKeyProviderConfig,
  unwrapRequest,
  wrapRequest,
} from '../processors/imgcrypt/schemes/keyprovider.ts';
import type { DecryptConfig, EncryptConfig } from '../processors/imgcrypt/key-wrapper.ts';
import { startGrpcProvider, writeCommandProvider, type GrpcProvider } from './support/keyprovider-fixture.ts';

const options = Buffer.from('{"symkey":"c3ltbWV0cmlj","digest":"sha256:00","cipheroptions":{"nonce":"bm9uY2U="}}');

function dc(partial: Partial<DecryptConfig>): DecryptConfig {
  return { privateKeys: [], x509s: [], gpgPrivateKeys: [], providerParameters: {}, skipped: [], ...partial };
}
function ec(partial: Partial<EncryptConfig>): EncryptConfig {
  return { jwe: [], pkcs7: [], pgpRecipients: [], gpgPublicKeyrings: [], providers: {}, ...partial };
}

let dir: string;
let grpcProvider: GrpcProvider;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgcrypt-keyprovider-'));
  grpcProvider = await startGrpcProvider('grpc-secret');
});
afterAll(async () => {
  await grpcProvider.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('key-provider config', () => {
  it('reads cmd and grpc providers and explains the docs example that lacks "cmd"', () => {
    const config = parseKeyProviderConfig(
      JSON.stringify({
        'key-providers': {
          a: { cmd: { path: '/bin/a', args: ['-x'] } },
          b: { grpc: 'localhost:50051', 'grpc-tls': { 'server-name': 'kp', 'insecure-skip-verify': true } },
          c: { path: '/bin/c', args: [] },
        },
      }),
    );
    expect(config.providers.get('a')).toEqual({ kind: 'cmd', path: '/bin/a', args: ['-x'] });
    expect(config.providers.get('b')).toEqual({ kind: 'grpc', address: 'localhost:50051', tls: { serverName: 'kp', insecureSkipVerify: true } });
    expect(config.providers.get('c')).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(/must sit inside a "cmd" object/) });
  });

  it('treats a missing variable or file as no providers and warns about (then ignores) a malformed file', () => {
    expect(loadKeyProviderConfig({}).providers.size).toBe(0);
    expect(loadKeyProviderConfig({ OCICRYPT_KEYPROVIDER_CONFIG: path.join(dir, 'absent.json') }).providers.size).toBe(0);
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, '{"key-providers": ');
    const warnings: string[] = [];
    expect(loadKeyProviderConfig({ OCICRYPT_KEYPROVIDER_CONFIG: bad }, (w) => warnings.push(w)).providers.size).toBe(0);
    expect(warnings).toEqual([expect.stringContaining(`${bad}: ignored:`)]);
  });

  it('builds the request documents ocicrypt sends, without private keys', () => {
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const wrap = JSON.parse(wrapRequest(ec({ providers: { kms: 'key-id-7' } }), options).toString('utf8'));
    expect(wrap).toEqual({
      op: 'keywrap',
      keywrapparams: { ec: { Parameters: { kms: [Buffer.from('key-id-7').toString('base64')] }, DecryptConfig: { Parameters: {} } }, optsdata: options.toString('base64') },
      keyunwrapparams: { annotation: null },
    });
    const unwrap = JSON.parse(
      unwrapRequest(dc({ privateKeys: [{ source: 'k.pem', key: privateKey }], providerParameters: { kms: 'Enabled' } }), Buffer.from('blob')).toString('utf8'),
    );
    expect(unwrap).toEqual({
      op: 'keyunwrap',
      keywrapparams: {},
      keyunwrapparams: { dc: { Parameters: { kms: [Buffer.from('Enabled').toString('base64')] } }, annotation: Buffer.from('blob').toString('base64') },
    });
  });
});

describe('command key provider (a real program)', () => {
  it('wraps and unwraps through the program and names it in errors', async () => {
    const provider = writeCommandProvider(dir, 'cmd-secret');
    const wrapper = keyProviderWrapper('mykms', { kind: 'cmd', path: provider.path, args: [] });
    expect(wrapper.annotationId).toBe('provider.mykms');
    expect(await wrapper.wrap(ec({}), options)).toBeUndefined();
    const blob = (await wrapper.wrap(ec({ providers: { mykms: 'Enabled' } }), options))!;
    expect(Buffer.from(blob).includes(options)).toBe(false);
    expect(wrapper.noPossibleKeys(dc({}))).toBe(false);
    expect(Buffer.from(await wrapper.unwrap(dc({}), blob))).toEqual(options);
    const log = fs.readFileSync(provider.logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.map((r) => r.op)).toEqual(['keywrap', 'keyunwrap']);
    // A provider that cannot unwrap exits non-zero; its stderr reaches the user.
    const other = keyProviderWrapper('mykms', { kind: 'cmd', path: writeCommandProvider(fs.mkdtempSync(path.join(dir, 'o-')), 'other').path, args: [] });
    await expect(other.unwrap(dc({}), blob)).rejects.toThrow(/key provider "mykms" \(command .*provider\): unwrap failed: .*exited with 3: provider refused/);
    const missing = keyProviderWrapper('gone', { kind: 'cmd', path: path.join(dir, 'no-such-provider'), args: [] });
    await expect(missing.unwrap(dc({}), blob)).rejects.toThrow(/key provider "gone".*cannot run .*no-such-provider/);
  });

  it('reports an invalid config entry when used', async () => {
    const wrapper = keyProviderWrapper('bad', { kind: 'invalid', reason: 'neither "cmd" nor "grpc" is set' });
    await expect(wrapper.unwrap(dc({}), Buffer.from('x'))).rejects.toThrow(/key provider "bad".*unsupported invocation.*neither "cmd" nor "grpc"/);
  });
});

describe('gRPC key provider (a real grpc-js server)', () => {
  it('calls /keyprovider.KeyProviderService/WrapKey and UnWrapKey with the JSON documents', async () => {
    const wrapper = keyProviderWrapper('grpckms', { kind: 'grpc', address: grpcProvider.address });
    const blob = (await wrapper.wrap(ec({ providers: { grpckms: 'key-1' } }), options))!;
    expect(Buffer.from(await wrapper.unwrap(dc({ providerParameters: { grpckms: 'key-1' } }), blob))).toEqual(options);
    expect(grpcProvider.requests).toMatchObject([
      { op: 'keywrap', keywrapparams: { ec: { Parameters: { grpckms: [Buffer.from('key-1').toString('base64')] } } } },
      { op: 'keyunwrap', keyunwrapparams: { annotation: Buffer.from(blob).toString('base64') } },
    ]);
    await expect(wrapper.unwrap(dc({}), Buffer.alloc(40, 1))).rejects.toThrow(/UnWrapKey at 127\.0\.0\.1:\d+: provider refused/);
  });

  it('fails with the address when nothing listens', async () => {
    const wrapper = keyProviderWrapper('down', { kind: 'grpc', address: '127.0.0.1:1' });
    await expect(wrapper.unwrap(dc({}), Buffer.from('x'))).rejects.toThrow(/key provider "down" \(gRPC 127\.0\.0\.1:1\): unwrap failed: .*127\.0\.0\.1:1/);
  });
});
