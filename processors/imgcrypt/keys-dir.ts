/**
 * Reads a decryption-keys directory (ctd-decoder's `--decryption-keys-path`). Unlike ctd-decoder,
 * which aborts on any symlink (imgcrypt.md §2), symlinks are followed: a Kubernetes Secret mount
 * is `key.pem -> ..data/key.pem`, `..data -> ..2026_11_22_…`, so every key is reachable by two or
 * three names. Files are deduplicated by their real path, names outside `..`-prefixed entries are
 * preferred as the label, and directory cycles are cut. Real subdirectories are searched too, as
 * ctd-decoder's filepath.Walk does. Anything that is not a usable regular file (dangling links,
 * FIFOs, devices, unreadable or oversized files) is reported with the reason, never fatal, and
 * never read past MAX_KEY_FILE_BYTES.
 */
import fs from 'node:fs';
import path from 'node:path';

/** No key, certificate or keyring is this large; bigger files are junk and are not read. */
export const MAX_KEY_FILE_BYTES = 1024 * 1024;

/**
 * Reads one key file, at most MAX_KEY_FILE_BYTES: the size is checked with fstat first and the
 * read stops one byte past the cap, so a file that lies about its size (procfs) or grows cannot
 * make it read more. Opened non-blocking so a path swapped for a FIFO after the stat cannot hang.
 * Throws an Error whose message is the reason to report.
 */
function readCappedKeyFile(file: string): Buffer {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new Error(`not a regular file (${fileKind(stat)})`);
    if (stat.size > MAX_KEY_FILE_BYTES) throw new Error(tooLarge(`${stat.size} bytes`));
    // The stat size plus one (procfs files report 0), growing up to one byte past the cap.
    let buf = Buffer.allocUnsafe(Math.min(Math.max(stat.size + 1, 64 * 1024), MAX_KEY_FILE_BYTES + 1));
    let length = 0;
    for (;;) {
      if (length === buf.length) {
        if (length > MAX_KEY_FILE_BYTES) throw new Error(tooLarge(`${stat.size} bytes by fstat, more as read`));
        const grown = Buffer.allocUnsafe(Math.min(buf.length * 2, MAX_KEY_FILE_BYTES + 1));
        buf.copy(grown);
        buf = grown;
      }
      const n = fs.readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) break;
      length += n;
    }
    return Buffer.from(buf.subarray(0, length));
  } finally {
    fs.closeSync(fd);
  }
}

function linkTarget(file: string): string {
  try {
    return ` to ${fs.readlinkSync(file)}`;
  } catch {
    return '';
  }
}

function fileKind(stat: fs.Stats): string {
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  return 'not a file';
}

function tooLarge(size: string): string {
  return `${size}: larger than the ${MAX_KEY_FILE_BYTES / (1024 * 1024)} MiB limit for key files; not read`;
}

export interface KeysDirFile {
  readonly path: string;
  readonly bytes: Buffer;
}

export interface KeysDirProblem {
  readonly source: string;
  readonly reason: string;
}

export interface KeysDirContents {
  readonly files: readonly KeysDirFile[];
  readonly problems: readonly KeysDirProblem[];
}

/** Kubernetes' atomic-writer names (`..data`, `..2026_…`) sort after the user-visible names. */
function byVisibleFirst(a: string, b: string): number {
  const ha = a.startsWith('..') ? 1 : 0;
  const hb = b.startsWith('..') ? 1 : 0;
  return ha !== hb ? ha - hb : a < b ? -1 : a > b ? 1 : 0;
}

export function readKeysDirectory(dir: string): KeysDirContents {
  const files: KeysDirFile[] = [];
  const problems: KeysDirProblem[] = [];
  const seenFiles = new Set<string>();
  const seenDirs = new Set<string>();

  const walk = (current: string): void => {
    let real: string;
    try {
      real = fs.realpathSync(current);
    } catch (err) {
      problems.push({ source: current, reason: `cannot resolve: ${(err as Error).message}` });
      return;
    }
    if (seenDirs.has(real)) return;
    seenDirs.add(real);
    let names: string[];
    try {
      names = fs.readdirSync(current);
    } catch (err) {
      problems.push({ source: current, reason: `cannot list directory: ${(err as Error).message}` });
      return;
    }
    for (const name of names.sort(byVisibleFirst)) {
      const full = path.join(current, name);
      let stat: fs.Stats;
      try {
        stat = fs.statSync(full);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        problems.push({ source: full, reason: code === 'ENOENT' ? `dangling symbolic link${linkTarget(full)}` : (err as Error).message });
        continue;
      }
      if (stat.isDirectory()) {
        walk(full);
        continue;
      }
      if (!stat.isFile()) {
        problems.push({ source: full, reason: `not a regular file (${fileKind(stat)})` });
        continue;
      }
      let realFile: string;
      try {
        realFile = fs.realpathSync(full);
      } catch (err) {
        problems.push({ source: full, reason: `cannot resolve: ${(err as Error).message}` });
        continue;
      }
      if (seenFiles.has(realFile)) continue;
      seenFiles.add(realFile);
      if (stat.size > MAX_KEY_FILE_BYTES) {
        problems.push({ source: full, reason: tooLarge(`${stat.size} bytes`) });
        continue;
      }
      let bytes: Buffer;
      try {
        bytes = readCappedKeyFile(full);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        problems.push({ source: full, reason: code === undefined ? (err as Error).message : `cannot read: ${(err as Error).message}` });
        continue;
      }
      files.push({ path: full, bytes });
    }
  };

  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    problems.push({ source: dir, reason: code === 'ENOENT' ? 'keys directory does not exist' : (err as Error).message });
    return { files, problems };
  }
  if (!stat.isDirectory()) {
    problems.push({ source: dir, reason: 'not a directory' });
    return { files, problems };
  }
  walk(dir);
  return { files, problems };
}
