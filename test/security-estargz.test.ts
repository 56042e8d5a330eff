/**
 * eStargz security limits of the built tools (dist/bin/outrigger-estargz):
 * - entry names that climb out of the layer root (`..` components) or are absolute are
 *   refused, naming the entry: by `build` for such a tar, and by `unpack` (stream processor)
 *   and `verify` for a blob whose TOC and tar agree on such a name (assembled by hand, since no
 *   builder of ours writes one);
 * - a TOC larger than the 256 MiB cap (a 1.4 MB blob whose TOC member inflates to 300 MiB) is
 *   refused by unpack, verify and ls with an error that says so, without inflating it into
 *   memory (peak RSS measured by GNU time stays far below the TOC's size).
 * A plain blob with ordinary `./` names passes all three, so the refusals are about the names.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinnedBinary } from './support/built-binary.ts';
import { assembleEstargz, encodeFooter, footerTocOffset, ustarHeader } from './support/estargz-blob.ts';

const GZIP_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const ESCAPING_NAMES = ['../evil', '/etc/evil', 'a/../../evil', './../evil'];
const TOC_CAP_MIB = 256;

let dir: string;
let bin: string;
let dispose: (() => void) | undefined;

beforeAll(() => {
  const pinned = pinnedBinary('outrigger-estargz');
  bin = pinned.path;
  dispose = pinned.dispose;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sec-estargz-'));
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  dispose?.();
});

interface Outcome {
  readonly status: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  readonly maxRssKiB: number;
}

/** Runs the tool under GNU time for its peak RSS (the last line time adds to stderr). */
function tool(args: readonly string[], input?: Buffer, env: NodeJS.ProcessEnv = {}, discardStdout = false): Outcome {
  const fullEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (!('STREAM_PROCESSOR_MEDIATYPE' in env)) delete fullEnv.STREAM_PROCESSOR_MEDIATYPE;
  delete fullEnv.NODE_OPTIONS;
  const devNull = discardStdout ? fs.openSync('/dev/null', 'w') : undefined;
  const r = spawnSync('/usr/bin/time', ['-f', 'maxrss=%M', bin, ...args], {
    input: input ?? Buffer.alloc(0),
    env: fullEnv,
    cwd: dir,
    maxBuffer: 1 << 28,
    timeout: 120_000,
    ...(devNull !== undefined ? { stdio: ['pipe', devNull, 'pipe'] as const } : {}),
  });
  if (devNull !== undefined) fs.closeSync(devNull);
  if (r.error) throw r.error;
  const err = r.stderr.toString();
  const m = /maxrss=(\d+)\s*$/.exec(err);
  return { status: r.status, stdout: r.stdout ?? Buffer.alloc(0), stderr: err.replace(/(Command exited with non-zero status \d+\n)?maxrss=\d+\s*$/, ''), maxRssKiB: m ? Number(m[1]) : -1 };
}

function file(name: string, data: Buffer): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  return p;
}

function tarWith(names: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const n of names) {
    const content = Buffer.from(`content of ${n}\n`);
    parts.push(ustarHeader(n, content.length), content, Buffer.alloc(512 - (content.length % 512)));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

describe('names that leave the layer root', () => {
  it('control: ordinary ./ names pass build, unpack, verify and ls', () => {
    const built = tool(['build', file('ok.tar', tarWith(['./a', './dir/b'])), '-o', path.join(dir, 'ok-built.blob'), '--no-progress', '--report', path.join(dir, 'ok.json')]);
    expect(built.status, built.stderr).toBe(0);
    const blob = assembleEstargz([{ name: './a', content: Buffer.from('a\n') }, { name: './dir/b', content: Buffer.from('b\n') }]);
    const blobFile = file('ok.blob', blob.blob);
    const unpack = tool([], blob.blob, { STREAM_PROCESSOR_MEDIATYPE: GZIP_LAYER });
    expect(unpack.status, unpack.stderr).toBe(0);
    expect(unpack.stdout.equals(blob.tar)).toBe(true);
    expect(tool(['verify', blobFile]).status).toBe(0);
    expect(tool(['ls', blobFile]).status).toBe(0);
  });

  for (const name of ESCAPING_NAMES) {
    it(`${JSON.stringify(name)}: build refuses the tar, unpack and verify refuse the blob`, () => {
      const built = tool(['build', file('bad.tar', tarWith(['./ok', name])), '-o', path.join(dir, 'bad-built.blob'), '--no-progress', '--report', path.join(dir, 'bad.json')]);
      expect(built.status, `build accepted ${name}`).not.toBe(0);
      expect(built.stderr).toContain(name);

      const blob = assembleEstargz([{ name: './ok', content: Buffer.from('ok\n') }, { name, content: Buffer.from('evil\n') }]);
      const blobFile = file('bad.blob', blob.blob);
      const unpack = tool([], blob.blob, { STREAM_PROCESSOR_MEDIATYPE: GZIP_LAYER });
      expect(unpack.status, `unpack accepted ${name}`).not.toBe(0);
      expect(unpack.stderr).toContain(JSON.stringify(name));
      // Cut short: containerd's diff_id check fails whatever it makes of the exit status.
      expect(unpack.stdout.equals(blob.tar)).toBe(false);
      const verify = tool(['verify', blobFile]);
      expect(verify.status, `verify accepted ${name}`).not.toBe(0);
      expect(verify.stderr).toContain(JSON.stringify(name));
    });
  }
});

describe('TOC size cap', () => {
  let bomb: string;
  let bombBytes: Buffer;

  beforeAll(() => {
    const base = assembleEstargz([{ name: './a', content: Buffer.from('hello\n') }]);
    const at = footerTocOffset(base.blob);
    const tocSize = (TOC_CAP_MIB + 44) * 1024 * 1024;
    // Zeros deflate about 1000:1: a 300 MiB TOC entry in a member of about 1.4 MB.
    const gz = zlib.gzipSync(Buffer.concat([ustarHeader('stargz.index.json', tocSize), Buffer.alloc(tocSize + 1024)]), { level: 1 });
    bombBytes = Buffer.concat([base.blob.subarray(0, at), gz, encodeFooter(at)]);
    bomb = file('bomb.blob', bombBytes);
  });

  const capMessage = /TOC.*(larger than|too large|exceeds|limit)/i;
  const rssLimitKiB = 200 * 1024;

  it('unpack refuses it with a message about the size, in bounded memory', () => {
    // The layer's tar (TOC entry included) streams out until the check fails: not kept here.
    const r = tool([], bombBytes, { STREAM_PROCESSOR_MEDIATYPE: GZIP_LAYER }, true);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(capMessage);
    expect(r.maxRssKiB).toBeGreaterThan(0);
    expect(r.maxRssKiB).toBeLessThan(rssLimitKiB);
  });

  it('verify refuses it with a message about the size, in bounded memory', () => {
    const r = tool(['verify', bomb]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(capMessage);
    expect(r.maxRssKiB).toBeLessThan(rssLimitKiB);
  });

  it('ls refuses it with a message about the size, in bounded memory', () => {
    const r = tool(['ls', bomb]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(capMessage);
    expect(r.maxRssKiB).toBeLessThan(rssLimitKiB);
  });
});
