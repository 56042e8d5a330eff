/**
 * `outrigger-estargz` as users and containerd run it: the built SEA, real files and pipes,
 * GNU tar and gzip as the other side.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtBinary } from './support/built-binary.ts';

let dir: string;
let bin: string;
let tar: Buffer;

function run(args: readonly string[], options: { input?: Buffer; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(bin, args, { input: options.input ?? Buffer.alloc(0), env: { ...process.env, ...options.env }, cwd: dir, maxBuffer: 1 << 28, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

beforeAll(() => {
  bin = builtBinary('outrigger-estargz');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-estargz-cli-'));
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(path.join(tree, 'etc/deep'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'etc/hostname'), 'box\n');
  fs.writeFileSync(path.join(tree, 'etc/deep/big'), Buffer.alloc(300_000, 'q'));
  fs.symlinkSync('hostname', path.join(tree, 'etc/name'));
  fs.linkSync(path.join(tree, 'etc/hostname'), path.join(tree, 'etc/hard'));
  const r = spawnSync('tar', ['--sort=name', '--mtime=@1700000000', '--owner=0', '--group=0', '--numeric-owner', '-C', tree, '-cf', '-', '.']);
  expect(r.status).toBe(0);
  tar = r.stdout;
  fs.writeFileSync(path.join(dir, 'layer.tar'), tar);
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('outrigger estargz build', () => {
  it('tar file → -o blob with --report; tar.gz on stdin → stdout with the report on stderr; same bytes', () => {
    const a = run(['build', '--chunk-size', '65536', '--level', '6', 'layer.tar', '-o', 'a.esgz', '--report', 'a.json']);
    expect(a.stderr).toBe('');
    expect(a.status).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'a.json'), 'utf8'));
    const blob = fs.readFileSync(path.join(dir, 'a.esgz'));
    const gunzipped = zlib.gunzipSync(blob);
    expect(report.uncompressedSize).toBe(gunzipped.length);
    expect(report.annotations['io.containers.estargz.uncompressed-size']).toBe(String(gunzipped.length));
    expect(report.annotations['containerd.io/snapshot/stargz/toc.digest']).toBe(report.tocDigest);

    const b = run(['build', '--chunk-size', '65536', '--level', '6'], { input: zlib.gzipSync(tar) });
    expect(b.status).toBe(0);
    expect(b.stdout.equals(blob)).toBe(true);
    expect(JSON.parse(b.stderr)).toEqual(report);
  });

  it('--prioritized-files puts the listed paths (and their parent dirs) first, then .prefetch.landmark', () => {
    fs.writeFileSync(path.join(dir, 'prio.txt'), '# workload\n/etc/deep/big\n');
    const r = run(['build', 'layer.tar', '--prioritized-files', 'prio.txt', '-o', 'p.esgz']);
    expect(r.status).toBe(0);
    const list = spawnSync('tar', ['-tzf', path.join(dir, 'p.esgz')]).stdout.toString().trim().split('\n');
    // The root entry './' cleans to '' and is no parent to move (as upstream's moveRec).
    expect(list.slice(0, 5)).toEqual(['./etc/', './etc/deep/', './etc/deep/big', '.prefetch.landmark', './']);
    expect(list.at(-1)).toBe('stargz.index.json');
  });

  it('bad input and bad flags fail with a message and a non-zero status', () => {
    expect(run(['build', '--level', '11', 'layer.tar', '-o', 'x.esgz'])).toMatchObject({ status: 2 });
    expect(run(['build', 'layer.tar', '--prioritized-files', 'missing.txt', '-o', 'x.esgz']).status).toBe(2);
    fs.writeFileSync(path.join(dir, 'prio2.txt'), 'nope\n');
    const missing = run(['build', 'layer.tar', '--prioritized-files', 'prio2.txt', '-o', 'x.esgz']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/prioritized file "nope" is not in the input tar/);
    expect(fs.existsSync(path.join(dir, 'x.esgz'))).toBe(false);
    const garbage = run(['build'], { input: Buffer.alloc(1024, 7) });
    expect(garbage.status).toBe(1);
    expect(garbage.stderr).toMatch(/estargz build: .*\(tar offset 0\)/);
  });
});

describe('outrigger estargz unpack / ls / verify', () => {
  it('unpack writes gunzip(blob) exactly; a plain gzip layer comes out as gunzip does', () => {
    const blob = fs.readFileSync(path.join(dir, 'a.esgz'));
    const r = run(['unpack'], { input: blob, env: { STREAM_PROCESSOR_MEDIATYPE: 'application/vnd.oci.image.layer.v1.tar+gzip' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.equals(zlib.gunzipSync(blob))).toBe(true);
    const plain = spawnSync('gzip', ['-c'], { input: tar }).stdout;
    const p = run(['unpack'], { input: plain });
    expect(p.status).toBe(0);
    expect(p.stdout.equals(tar)).toBe(true);
  });

  it('the bare link name runs the unpack processor when containerd starts it (STREAM_PROCESSOR_MEDIATYPE set), help otherwise', () => {
    const blob = fs.readFileSync(path.join(dir, 'a.esgz'));
    const r = run([], { input: blob, env: { STREAM_PROCESSOR_MEDIATYPE: 'application/vnd.oci.image.layer.v1.tar+gzip' } });
    expect(r.status).toBe(0);
    expect(r.stdout.equals(zlib.gunzipSync(blob))).toBe(true);
    const bare = spawnSync(bin, [], { input: blob, env: { ...process.env, STREAM_PROCESSOR_MEDIATYPE: undefined } });
    expect(bare.status).not.toBe(0);
    expect(bare.stdout.length).toBe(0);
    expect(bare.stderr.toString()).toMatch(/^Usage: outrigger estargz /);
  });

  it('unpack takes the TOC digest from --toc-digest or the environment and fails short on a mismatch', () => {
    const blob = fs.readFileSync(path.join(dir, 'a.esgz'));
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'a.json'), 'utf8'));
    expect(run(['unpack', '--toc-digest', report.tocDigest], { input: blob }).status).toBe(0);
    const wrong = `sha256:${'a'.repeat(64)}`;
    const viaEnv = run(['unpack'], { input: blob, env: { OUTRIGGER_ESTARGZ_TOC_DIGEST: wrong } });
    expect(viaEnv.status).toBe(1);
    expect(viaEnv.stderr).toMatch(/TOC digest mismatch: required sha256:a{64}/);
    expect(viaEnv.stdout.length).toBeLessThan(report.uncompressedSize);
    expect(run(['unpack', '--toc-digest', 'md5:x'], { input: blob }).status).toBe(2);
  });

  it('a flipped byte in a chunk fails the unpack with the offset, and the output stops short', () => {
    const blob = Buffer.from(fs.readFileSync(path.join(dir, 'a.esgz')));
    blob[Math.floor(blob.length / 2)]! ^= 0x20;
    const r = run(['unpack'], { input: blob });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/estargz unpack: .*offset \d+.*the tar output was cut short/);
    expect(r.stdout.length).toBeLessThan(JSON.parse(fs.readFileSync(path.join(dir, 'a.json'), 'utf8')).uncompressedSize);
  });

  it('ls prints the TOC as a table or as JSON; verify reports the checked chunks and the diff_id', () => {
    const table = run(['ls', 'a.esgz']);
    expect(table.status).toBe(0);
    const lines = table.stdout.toString().split('\n');
    expect(lines[0]).toMatch(/^# estargz TOC at offset \d+, digest sha256:[0-9a-f]{64}, \d+ entries$/);
    expect(lines[1]).toMatch(/^TYPE\s+MODE\s+UID:GID\s+SIZE\s+OFFSET\s+NAME$/);
    expect(table.stdout.toString()).toMatch(/\nreg\s+0644\s+0:0\s+300000\s+\d+\s+\.\/etc\/deep\/big\n(chunk\s.*\n){4}/);
    expect(table.stdout.toString()).toMatch(/symlink .* \.\/etc\/name -> hostname/);
    const json = JSON.parse(run(['ls', '--json', 'a.esgz']).stdout.toString());
    expect(json.version).toBe(1);
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'a.json'), 'utf8'));
    const v = run(['verify', 'a.esgz', '--toc-digest', report.tocDigest]);
    expect(v.status).toBe(0);
    expect(JSON.parse(v.stdout.toString())).toMatchObject({ ok: true, format: 'estargz', tocDigest: report.tocDigest, diffId: report.diffId, chunks: 7, chunkDigestsChecked: 7 });
    const notStargz = run(['verify', 'layer.tar']);
    expect(notStargz.status).toBe(1);
    expect(run(['ls', 'layer.tar']).stderr).toMatch(/no eStargz or legacy stargz footer/);
  });

  it('zstd:chunked: build --zstdchunked, then ls, verify and unpack read it through its footer and check every chunk; a flipped byte fails', () => {
    const built = run(['build', '--zstdchunked', '--chunk-size', '65536', 'layer.tar', '-o', 'z.zst', '--report', 'z.json']);
    expect(built.status, built.stderr).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'z.json'), 'utf8'));
    const table = run(['ls', 'z.zst']);
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout.toString()).toMatch(new RegExp(`^# zstd:chunked TOC at offset \\d+, digest ${report.tocDigest}, \\d+ entries\n`));
    const v = run(['verify', 'z.zst', '--toc-digest', report.tocDigest]);
    expect(v.status, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout.toString())).toMatchObject({ ok: true, format: 'zstd:chunked', tocDigest: report.tocDigest, diffId: report.diffId, chunks: 7, chunkDigestsChecked: 7 });
    const blob = fs.readFileSync(path.join(dir, 'z.zst'));
    const out = run(['unpack'], { input: blob });
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout.equals(zlib.zstdDecompressSync(blob))).toBe(true);
    // A plain zstd layer passes through; verify says it is not chunked.
    fs.writeFileSync(path.join(dir, 'plain.zst'), zlib.zstdCompressSync(tar));
    expect(run(['unpack'], { input: fs.readFileSync(path.join(dir, 'plain.zst')) }).stdout.equals(tar)).toBe(true);
    expect(run(['verify', 'plain.zst']).stderr).toMatch(/not an eStargz or zstd:chunked layer \(a plain zstd stream/);
    // One byte of the TOC's compressed frame changed: the unpack fails and its output stops short.
    const bad = Buffer.from(blob);
    bad[report.tocOffset + 20]! ^= 0x10;
    const failed = run(['unpack'], { input: bad });
    expect(failed.status).toBe(1);
    expect(failed.stderr).toMatch(/zstd:chunked TOC|TOC/);
    expect(failed.stdout.length).toBeLessThan(out.stdout.length);
  });
});
