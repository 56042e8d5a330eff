/**
 * `outrigger-zstd` as users and containerd run it: the built SEA (dist/bin), real files, real
 * pipes, the real zstd/gzip CLIs as the other side. Flag behaviour follows `zstd` 1.5.4 where
 * both have the flag; stream-processor mode follows containerd's contract (stdin → stdout,
 * STREAM_PROCESSOR_MEDIATYPE, stderr only read on a non-zero exit).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtBinary } from './support/built-binary.ts';
import { skippableFrame, textLike, tool } from './support/zstd-helpers.ts';
import { runThroughSlowNonBlockingPipes } from './support/slow-nonblocking-pipes.ts';

const ZSTD_MEDIA = 'application/vnd.oci.image.layer.v1.tar+zstd';
const GZIP_MEDIA = 'application/vnd.oci.image.layer.v1.tar+gzip';

let dir: string;
let bin: string;
const data = Buffer.concat([textLike(600_000, 21), Buffer.alloc(100_000), textLike(300_000, 22)]);
let zst: Buffer;
let gz: Buffer;

function run(args: readonly string[], options: { input?: Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (!options.env || !('STREAM_PROCESSOR_MEDIATYPE' in options.env)) delete env.STREAM_PROCESSOR_MEDIATYPE;
  const r = spawnSync(bin, args, { input: options.input ?? Buffer.alloc(0), env, cwd: options.cwd ?? dir, maxBuffer: 1 << 28, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

function file(name: string, content?: Buffer): string {
  const p = path.join(dir, name);
  if (content !== undefined) fs.writeFileSync(p, content);
  return p;
}

beforeAll(() => {
  bin = builtBinary('outrigger-zstd');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrigger-zstd-cli-'));
  zst = tool('zstd', ['-q', '-c'], data);
  gz = tool('gzip', ['-c'], data);
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('zstd-compatible pipe', () => {
  it('-dc decodes zstd and gzip from files and from stdin, several inputs concatenated', () => {
    file('a.zst', zst);
    file('b.gz', gz);
    const r = run(['-dc', 'a.zst', 'b.gz', '-'], { input: zst });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.equals(Buffer.concat([data, data, data]))).toBe(true);
    const piped = run(['-d'], { input: gz });
    expect(piped.status).toBe(0);
    expect(piped.stdout.equals(data)).toBe(true);
  });

  it('-d FILE.zst writes FILE, keeps the input (-k is the default), refuses to overwrite without -f, --rm removes', () => {
    file('keep.tar.zst', zst);
    expect(run(['-d', 'keep.tar.zst']).status).toBe(0);
    expect(fs.readFileSync(file('keep.tar')).equals(data)).toBe(true);
    expect(fs.existsSync(file('keep.tar.zst'))).toBe(true);
    const again = run(['-d', 'keep.tar.zst']);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/keep\.tar: already exists; not overwritten \(use -f to overwrite\)/);
    expect(run(['-d', '-f', '--rm', 'keep.tar.zst']).status).toBe(0);
    expect(fs.existsSync(file('keep.tar.zst'))).toBe(false);
    expect(fs.readFileSync(file('keep.tar')).equals(data)).toBe(true);
    file('layer.tgz', gz);
    expect(run(['-d', 'layer.tgz']).status).toBe(0);
    expect(fs.readFileSync(file('layer.tar')).equals(data)).toBe(true);
  });

  it('-o FILE takes several inputs; a failed input removes the partial output and exits 1', () => {
    file('o1.zst', zst);
    file('o2.gz', gz);
    expect(run(['-d', '-o', 'joined', 'o1.zst', 'o2.gz']).status).toBe(0);
    expect(fs.readFileSync(file('joined')).equals(Buffer.concat([data, data]))).toBe(true);
    file('cut.zst', zst.subarray(0, zst.length - 10));
    const r = run(['-d', '-o', 'partial', 'o1.zst', 'cut.zst']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`cut\\.zst: zstd: input truncated at byte ${zst.length - 10}\\b`));
    expect(fs.existsSync(file('partial'))).toBe(false);
  });

  it('compresses by default: -#, --long, --no-check, and the real zstd decodes it', () => {
    for (const args of [[], ['-1'], ['-19'], ['--long=24'], ['--no-check'], ['-T0']]) {
      const r = run(['-c', ...args], { input: data });
      expect(r.status, args.join(' ')).toBe(0);
      expect(tool('zstd', ['-dc', '--long=27'], r.stdout).equals(data), args.join(' ')).toBe(true);
    }
    file('plain.bin', data);
    expect(run(['-q', 'plain.bin']).status).toBe(0);
    expect(tool('zstd', ['-dc'], fs.readFileSync(file('plain.bin.zst'))).equals(data)).toBe(true);
    // Frame header: content size known for a file input, checksum on (zstd -lv prints both).
    const listing = spawnSync('zstd', ['-lv', file('plain.bin.zst')], { encoding: 'utf8' }).stdout;
    expect(listing).toMatch(/Check: XXH64/);
    expect(listing).toMatch(new RegExp(`Decompressed Size:.*\\(${data.length} B\\)`));
    const noCheck = run(['-c', '--no-check'], { input: data }).stdout;
    fs.writeFileSync(file('nocheck.zst'), noCheck);
    expect(spawnSync('zstd', ['-lv', file('nocheck.zst')], { encoding: 'utf8' }).stdout).toMatch(/Check: None/);
  });

  it('-dcf passes input that is not zstd or gzip through unchanged; without -f it is an error', () => {
    const plain = Buffer.from('plain text, not compressed\n');
    const passed = run(['-dcf'], { input: plain });
    expect(passed.status).toBe(0);
    expect(passed.stdout.equals(plain)).toBe(true);
    const refused = run(['-dc'], { input: plain });
    expect(refused.status).toBe(1);
    expect(refused.stdout.length).toBe(0);
    expect(refused.stderr).toMatch(/stdin: not zstd or gzip data at byte 0/);
  });

  it('--memory / --long raise the window limit; the default refuses windows above 128 MiB like zstd does', () => {
    const wide = tool('zstd', ['-q', '-c', '--long=28', '--no-content-size'], data);
    const refused = run(['-dc'], { input: wide });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/needs a 256 MiB window, above the limit of 128 MiB.*--long=28/);
    expect(spawnSync('zstd', ['-dc'], { input: wide }).status).not.toBe(0); // the reference refuses too
    for (const flag of [['--long=28'], ['--memory=256MiB'], ['-M', '256MB']]) {
      const r = run(['-dc', ...flag], { input: wide });
      expect(r.status, flag.join(' ')).toBe(0);
      expect(r.stdout.equals(data)).toBe(true);
    }
  });

  it('-t checks integrity without output; -v reports sizes and frames; -q keeps stderr quiet', () => {
    const stream = Buffer.concat([zst, skippableFrame(Buffer.from('toc')), zst]);
    const r = run(['-t', '-v'], { input: stream });
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toBe(`stdin: OK zstd ${stream.length} => ${data.length * 2} bytes, 2 zstd frame(s), 1 skippable\n`);
    expect(run(['-q', '-c', '-T2'], { input: data }).stderr).toBe('');
    expect(run(['-c', '-T2'], { input: data }).stderr).toMatch(/-T is ignored/);
  });

  it('bad command lines exit 2 with a reason', () => {
    for (const [args, reason] of [
      [['--bogus'], /unknown option '--bogus'/],
      [['-d', '-z'], /contradict/],
      [['-20'], /levels above 19 need --ultra/],
      [['-d', '--memory=lots'], /cannot read size 'lots'/],
      [['-d', '--long=40'], /window log must be an integer from 10 to 31/],
      [['-d', 'x.unknown'], /unknown suffix/],
    ] as const) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(reason);
    }
  });

  it('truncation at sampled offsets through the binary: exit 1, offset on stderr, stdout short of the data', () => {
    const small = tool('zstd', ['-q', '-c', '-B4096'], data.subarray(0, 60_000));
    const offsets = [1, 4, 5, 8, 20, small.length >> 2, small.length >> 1, small.length - 5, small.length - 4, small.length - 1];
    for (const cut of offsets) {
      const r = run(['-dc'], { input: small.subarray(0, cut) });
      expect(r.status, `cut ${cut}`).toBe(1);
      expect(r.stderr, `cut ${cut}`).toMatch(new RegExp(`byte ${cut}\\b|at byte 0`));
      expect(r.stdout.length, `cut ${cut}`).toBeLessThan(60_000);
    }
    const gzSmall = tool('gzip', ['-c'], data.subarray(0, 60_000));
    for (const cut of [3, 10, gzSmall.length >> 1, gzSmall.length - 8, gzSmall.length - 1]) {
      const r = run(['-dc'], { input: gzSmall.subarray(0, cut) });
      expect(r.status, `gzip cut ${cut}`).toBe(1);
      expect(r.stdout.length, `gzip cut ${cut}`).toBeLessThan(60_000);
    }
  });
});

describe('stream-processor mode (STREAM_PROCESSOR_MEDIATYPE set)', () => {
  it('decodes tar+zstd and tar+gzip layers from stdin to stdout, stderr empty, and logs a line per layer', () => {
    const log = file('layers.log');
    for (const [media, layer] of [
      [ZSTD_MEDIA, zst],
      [GZIP_MEDIA, gz],
      ['application/vnd.docker.image.rootfs.diff.tar.gzip', gz],
    ] as const) {
      const r = run(['--log-file', log], { input: layer, env: { STREAM_PROCESSOR_MEDIATYPE: media } });
      expect(r.stderr, media).toBe('');
      expect(r.status, media).toBe(0);
      expect(r.stdout.equals(data), media).toBe(true);
    }
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(new RegExp(`outrigger-zstd pid=\\d+ media=${ZSTD_MEDIA.replaceAll('.', '\\.').replace('+', '\\+')} result=ok format=zstd in=${zst.length} out=${data.length} frames=1 skippable=0 ms=\\d+$`));
    expect(lines[1]).toMatch(/result=ok format=gzip/);
  });

  it('a corrupt layer: non-zero exit, stderr says which layer, where and why, stdout is cut short, the log records it', () => {
    const log = file('bad.log');
    const bad = Buffer.from(zst);
    bad[bad.length - 2] = bad[bad.length - 2]! ^ 0x40; // inside the content checksum
    const r = run(['--log-file', log], { input: bad, env: { STREAM_PROCESSOR_MEDIATYPE: ZSTD_MEDIA } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^outrigger: zstd stream processor: layer application\/vnd\.oci\.image\.layer\.v1\.tar\+zstd: zstd: content checksum mismatch: the decompressed data is corrupt \(detected while decoding compressed bytes \d+\.\.\d+, in the frame that starts at byte 0\); the tar output was cut short\n$/);
    expect(r.stdout.length).toBeLessThan(data.length);
    expect(data.subarray(0, r.stdout.length).equals(r.stdout)).toBe(true);
    expect(fs.readFileSync(log, 'utf8')).toMatch(/result=error offset=\d+ error="zstd: content checksum mismatch/);
  });

  it('an unknown media type is a clear error naming what is accepted, and nothing reaches stdout', () => {
    const r = run([], { input: zst, env: { STREAM_PROCESSOR_MEDIATYPE: 'application/vnd.oci.image.layer.v1.tar+lz4' } });
    expect(r.status).toBe(2);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(/unsupported media type 'application\/vnd\.oci\.image\.layer\.v1\.tar\+lz4'.*tar\+zstd/);
  });

  it('an unwritable --log-file fails loudly instead of silently losing the operator log', () => {
    const r = run(['--log-file', '/nonexistent-dir/x.log'], { input: zst, env: { STREAM_PROCESSOR_MEDIATYPE: ZSTD_MEDIA } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--log-file \/nonexistent-dir\/x\.log: cannot open/);
    expect(r.stdout.length).toBe(0);
  });
});

describe('non-blocking stdio', () => {
  it('decodes correctly when its stdin and stdout pipes are non-blocking and the peers are slow', async () => {
    // 4 MB out: more than the 1 MiB pipe the decoder asks for, so its writes find the pipe full.
    const big = Buffer.concat([data, data, data, data]);
    const input = tool('zstd', ['-q', '-c'], big);
    const r = await runThroughSlowNonBlockingPipes({ argv: [bin, '-dc'], input, writeChunk: 50_000, readChunk: 16 * 1024 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.equals(big)).toBe(true);
  });
});
