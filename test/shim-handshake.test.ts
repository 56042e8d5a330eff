/**
 * The bytes of the start/delete handshake for each containerd line (task-api.md §9,
 * shim-protocol.md §2.2–2.8): stdin empty (1.6, no options), an options Any (1.6–2.2),
 * BootstrapParams with the Any in extensions (2.3+); the bare address out; the DeleteResponse.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { AnySchema, TimestampSchema } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { OptionsSchema as RuncOptionsSchema } from '../src/api/gen/containerd/runc/v1/oci_pb.ts';
import { BootstrapParamsSchema, LogLevel } from '../src/api/gen/containerd/runtime/bootstrap/v1/bootstrap_pb.ts';
import { OptionsSchema as RuntimeOptionsSchema } from '../src/api/gen/runtimeoptions/v1/api_pb.ts';
import { packAny } from '../src/api/typeurl.ts';
import { deleteOutput, parseStartInput, startOutput } from '../shims/outrigger-v2/bootstrap/handshake.ts';
import { groupingKey, socketPath } from '../shims/outrigger-v2/bootstrap/socket-address.ts';
import { runtimeOptionsFromAny } from '../shims/outrigger-v2/runtime/options.ts';

const expect16 = { id: 't1', namespace: 'default' };
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('start stdin', () => {
  it('containerd 1.6 without options: 0 bytes → no options', () => {
    expect(parseStartInput(new Uint8Array(), expect16)).toEqual({ options: undefined, bootstrap: undefined });
  });

  it('containerd 1.6–2.2: a raw Any holding containerd.runc.v1.Options', () => {
    const any = packAny(RuncOptionsSchema, { binaryName: 'crun', systemdCgroup: true });
    const bytes = toBinary(AnySchema, any);
    // field 1 (0x0a) = the bare type URL, field 2 (0x12) = the Options bytes
    expect(hex(bytes.subarray(0, 2))).toBe(`0a${(26).toString(16)}`);
    const got = parseStartInput(bytes, expect16);
    expect(got.bootstrap).toBeUndefined();
    expect(got.options?.typeUrl).toBe('containerd.runc.v1.Options');
    expect(runtimeOptionsFromAny(got.options)).toMatchObject({ binaryName: 'crun', systemdCgroup: true });
  });

  it('containerd 2.3: BootstrapParams with the options Any in extensions', () => {
    const options = packAny(RuntimeOptionsSchema, { configPath: '/etc/outrigger/runtime.toml' });
    const params = create(BootstrapParamsSchema, {
      instanceId: 't1',
      namespace: 'default',
      logLevel: LogLevel.DEBUG,
      containerdVersion: 'v2.3.0',
      containerdTtrpcAddress: '/run/containerd/containerd.sock.ttrpc',
      containerdGrpcAddress: '/run/containerd/containerd.sock',
      containerdBinary: '/usr/bin/containerd',
      extensions: [{ value: options }],
    });
    const got = parseStartInput(toBinary(BootstrapParamsSchema, params), expect16);
    expect(got.bootstrap?.containerdTtrpcAddress).toBe('/run/containerd/containerd.sock.ttrpc');
    expect(got.options?.typeUrl).toBe('runtimeoptions.v1.Options');
    expect(fromBinary(RuntimeOptionsSchema, got.options!.value).configPath).toBe('/etc/outrigger/runtime.toml');
  });

  it('2.3 BootstrapParams with only id and namespace is not mistaken for an Any', () => {
    const bytes = toBinary(BootstrapParamsSchema, create(BootstrapParamsSchema, { instanceId: 't1', namespace: 'default' }));
    const got = parseStartInput(bytes, expect16);
    expect(got.bootstrap?.namespace).toBe('default');
    expect(got.options).toBeUndefined();
  });

  it('an Any whose URL is not a type name is refused, not guessed', () => {
    const bytes = toBinary(AnySchema, create(AnySchema, { typeUrl: 'not a url', value: new Uint8Array([1]) }));
    expect(() => parseStartInput(bytes, expect16)).toThrow(/implausible type URL/);
  });
});

describe('start stdout', () => {
  it('is the bare unix:// address, 89 bytes for the Go layout, no newline', () => {
    const socket = socketPath('/run/containerd/containerd.sock', 'default', 't1');
    const out = startOutput(`unix://${socket}`);
    expect(out.length).toBe(89);
    expect(Buffer.from(out).toString()).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    expect(() => startOutput(socket)).toThrow(/lacks unix:\/\//);
  });

  it('hashes "<address>/<namespace>/<group>" as the Go shim does', () => {
    // sha256("/run/containerd/containerd.sock/default/t1"), computed independently with sha256sum
    expect(socketPath('/run/containerd/containerd.sock', 'default', 't1')).toBe(
      '/run/containerd/s/df6a0c5cd2e9a1a16d9a3f2447365d9fc6021bc1d3d9a4caa2f5b2c4f773758f',
    );
  });

  it('groups by io.containerd.runc.v2.group, then the CRI sandbox id, else the task id', () => {
    expect(groupingKey('c1', {})).toBe('c1');
    expect(groupingKey('c1', { 'io.kubernetes.cri.sandbox-id': 'pod' })).toBe('pod');
    expect(groupingKey('c1', { 'io.kubernetes.cri.sandbox-id': 'pod', 'io.containerd.runc.v2.group': 'g' })).toBe('g');
  });
});

describe('delete stdout', () => {
  it('is the raw DeleteResponse: the bytes containerd 1.6 got from the runc shim', () => {
    // Observed (shim-protocol.md §2.8): pid 28091, status 137, exited_at {seconds, nanos}.
    const observed = Buffer.from('08bbdb011089011a0c08e7f989d80610d4b1ceda02', 'hex');
    // the timestamp's varints (08 e7f989d806, 10 d4b1ceda02) decoded by hand
    const exitedAt = create(TimestampSchema, { seconds: 1795325159n, nanos: 726898900 });
    expect(hex(deleteOutput({ pid: 28091, exitStatus: 137, exitedAt }))).toBe(observed.toString('hex'));
  });
});
