/**
 * Reads a decryption-keys directory (ctd-decoder's `--decryption-keys-path`). Unlike ctd-decoder,
 * which aborts on any symlink (imgcrypt.md §2), symlinks are followed: a Kubernetes Secret mount
 * is `key.pem -> ..data/key.pem`, `..data -> ..2026_11_22_…`, so every key is reachable by two or
 * three names. Files are deduplicated by their real path, names outside `..`-prefixed entries are
 * preferred as the label, and directory cycles are cut. Unreadable entries are reported, not fatal.
 */
import fs from 'node:fs';
import path from 'node:path';

/** No key, certificate or keyring is this large; bigger files are junk and are not read. */
export const MAX_KEY_FILE_BYTES = 1024 * 1024;

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
        problems.push({ source: full, reason: code === 'ENOENT' ? 'dangling symbolic link' : (err as Error).message });
        continue;
      }
      if (stat.isDirectory()) {
        walk(full);
        continue;
      }
      if (!stat.isFile()) {
        problems.push({ source: full, reason: 'not a regular file' });
        continue;
      }
      const realFile = fs.realpathSync(full);
      if (seenFiles.has(realFile)) continue;
      seenFiles.add(realFile);
      if (stat.size > MAX_KEY_FILE_BYTES) {
        problems.push({ source: full, reason: `${stat.size} bytes: too large for a key file` });
        continue;
      }
      try {
        files.push({ path: full, bytes: fs.readFileSync(full) });
      } catch (err) {
        problems.push({ source: full, reason: `cannot read: ${(err as Error).message}` });
      }
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
