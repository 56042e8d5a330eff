/**
 * What `outrigger install` did, so `outrigger uninstall` undoes exactly that and nothing else.
 * Kept at PREFIX/share/outrigger/install-manifest.json.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface InstallManifest {
  readonly manifestVersion: 1;
  readonly prefix: string;
  /** Files and symlinks install created (removed on uninstall), in creation order. */
  readonly created: string[];
  /** Directories install created (removed on uninstall when empty), outermost first. */
  readonly createdDirs: string[];
  readonly containerdConfig: {
    readonly path: string;
    /** Whether the file existed before the first install (uninstall deletes it otherwise). */
    readonly existedBefore: boolean;
    /** Timestamped copies of the file made before each change. */
    readonly backups: string[];
  };
}

export function manifestPath(prefix: string): string {
  return path.join(prefix, 'share', 'outrigger', 'install-manifest.json');
}

export function readManifest(prefix: string): InstallManifest | undefined {
  const file = manifestPath(prefix);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read install manifest ${file}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`install manifest ${file} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const m = parsed as Partial<InstallManifest>;
  if (m.manifestVersion !== 1 || !Array.isArray(m.created) || !Array.isArray(m.createdDirs) || typeof m.containerdConfig?.path !== 'string') {
    throw new Error(`install manifest ${file} is not one outrigger wrote (manifestVersion 1 expected)`);
  }
  return m as InstallManifest;
}

export function writeManifest(manifest: InstallManifest): void {
  const file = manifestPath(manifest.prefix);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
  fs.renameSync(`${file}.tmp`, file);
}
