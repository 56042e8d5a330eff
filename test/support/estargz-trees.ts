/**
 * Random file trees for the eStargz / zstd:chunked property tests (fast-check), written and read
 * back with tar-stream, the independent tar implementation.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import tarStream from 'tar-stream';

export interface InEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  content?: Buffer;
  linkname?: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, string>;
}

export async function packTar(entries: readonly InEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const pax = e.xattrs ? Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [`SCHILY.xattr.${k}`, v])) : undefined;
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      const header = {
        name: e.name, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, uname: e.uname, gname: e.gname,
        mtime: new Date(e.mtime * 1000), linkname: e.linkname, devmajor: e.devmajor, devminor: e.devminor, pax,
        size: e.content?.length ?? 0,
      };
      if (e.type === 'file') pack.entry(header, e.content ?? Buffer.alloc(0), cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export interface OutEntry {
  name: string;
  type: string;
  size: number;
  sha: string;
  linkname: string | null | undefined;
  mode: number;
  uid: number;
  gid: number;
  uname: string | undefined;
  gname: string | undefined;
  mtime: number;
  devmajor: number | undefined;
  devminor: number | undefined;
  xattrs: Record<string, string>;
}

export async function readTar(tar: Buffer): Promise<OutEntry[]> {
  const extract = tarStream.extract();
  const out: OutEntry[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const parts: Buffer[] = [];
      for await (const c of entry) parts.push(c as Buffer);
      const h = entry.header;
      const xattrs: Record<string, string> = {};
      for (const [k, v] of Object.entries(h.pax ?? {})) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice(13)] = v;
      out.push({
        name: h.name, type: h.type ?? 'file', size: h.size ?? 0, sha: createHash('sha256').update(Buffer.concat(parts)).digest('hex'),
        linkname: h.linkname, mode: h.mode ?? 0, uid: h.uid ?? 0, gid: h.gid ?? 0, uname: h.uname, gname: h.gname,
        mtime: Math.floor((h.mtime?.getTime() ?? 0) / 1000), devmajor: h.devmajor, devminor: h.devminor, xattrs,
      });
    }
  })();
  extract.end(tar);
  await done;
  return out;
}

const segment = fc.stringMatching(/^[a-zA-Z0-9._é漢-]{1,12}$/).filter((s) => s !== '.' && s !== '..');

/** A random tree: unique names, files of sizes around chunk boundaries, links to earlier files. */
export const treeArb = fc
  .record({
    names: fc.uniqueArray(fc.array(segment, { minLength: 1, maxLength: 3 }).map((p) => p.join('/')), { minLength: 1, maxLength: 12, selector: (n) => n.toLowerCase() }),
    longName: fc.boolean(),
    kinds: fc.array(fc.constantFrom('file', 'file', 'file', 'directory', 'symlink', 'link', 'character-device', 'block-device', 'fifo'), { minLength: 12, maxLength: 12 }),
    sizes: fc.array(fc.oneof(fc.constantFrom(0, 1, 511, 512, 513, 999, 1000, 1001, 4096, 8192), fc.integer({ min: 0, max: 9000 })), { minLength: 12, maxLength: 12 }),
    owners: fc.array(fc.record({ uid: fc.constantFrom(0, 1000, 65534), uname: fc.constantFrom('', 'root', 'user', 'nobody') }), { minLength: 12, maxLength: 12 }),
    mtimes: fc.array(fc.constantFrom(0, 1, 1_700_000_000, 2_000_000_123), { minLength: 12, maxLength: 12 }),
    xattr: fc.array(fc.option(fc.record({ key: fc.constantFrom('user.a', 'security.capability', 'user.long.name'), value: fc.string({ minLength: 0, maxLength: 20 }) }), { nil: undefined }), { minLength: 12, maxLength: 12 }),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  })
  .map(({ names, longName, kinds, sizes, owners, mtimes, xattr, seed }) => {
    const all = longName ? [...names, `${'deep/'.repeat(30)}file-with-a-name-longer-than-one-hundred-bytes`] : names;
    const entries: InEntry[] = [];
    const files: string[] = [];
    all.forEach((name, i) => {
      const kind = kinds[i % kinds.length]!;
      const owner = owners[i % owners.length]!;
      const x = xattr[i % xattr.length];
      const base = { name, mode: 0o644, uid: owner.uid, gid: owner.uid, uname: owner.uname, gname: owner.uname, mtime: mtimes[i % mtimes.length]! };
      if (kind === 'file' || (kind === 'link' && files.length === 0)) {
        const size = sizes[i % sizes.length]!;
        const content = Buffer.alloc(size);
        let s = seed + i;
        for (let b = 0; b < size; b++) {
          s = (s * 1103515245 + 12345) & 0x7fffffff;
          content[b] = b % 7 === 0 ? s & 0xff : 0x41 + (b % 13);
        }
        entries.push({ ...base, type: 'file', content, xattrs: x ? { [x.key]: x.value } : undefined });
        files.push(name);
      } else if (kind === 'directory') {
        entries.push({ ...base, name: `${name}/`, type: 'directory', mode: 0o755 });
      } else if (kind === 'symlink') {
        entries.push({ ...base, type: 'symlink', mode: 0o777, linkname: `../target/${i}` });
      } else if (kind === 'link') {
        entries.push({ ...base, type: 'link', linkname: files[i % files.length]! });
      } else if (kind === 'character-device' || kind === 'block-device') {
        entries.push({ ...base, type: kind, devmajor: 1 + i, devminor: 3 + i });
      } else {
        entries.push({ ...base, type: 'fifo' });
      }
    });
    return entries;
  });

export function expectedOut(e: InEntry): Partial<OutEntry> {
  return {
    name: e.name, type: e.type, size: e.content?.length ?? 0,
    sha: createHash('sha256').update(e.content ?? Buffer.alloc(0)).digest('hex'),
    mode: e.mode, uid: e.uid, gid: e.gid, uname: e.uname, gname: e.gname, mtime: e.mtime,
    xattrs: e.xattrs ?? {},
    ...(e.type === 'symlink' || e.type === 'link' ? { linkname: e.linkname } : {}),
    ...(e.type === 'character-device' || e.type === 'block-device' ? { devmajor: e.devmajor, devminor: e.devminor } : {}),
  };
}

