/** What the shim needs to know from a bundle's OCI spec (config.json). */
import fs from 'node:fs';
import path from 'node:path';

/**
 * True unless the container has a pid namespace of its own (a `pid` entry without a path).
 * In a shared pid namespace the init's children are not killed with it, so the runc shim kills
 * them (`ShouldKillAllOnExit`); so do we.
 */
export function shouldKillAllOnExit(bundle: string): boolean {
  let spec: { linux?: { namespaces?: { type?: string; path?: string }[] } };
  try {
    spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as typeof spec;
  } catch {
    return true;
  }
  const ns = spec.linux?.namespaces ?? [];
  return !ns.some((n) => n.type === 'pid' && (n.path === undefined || n.path === ''));
}
