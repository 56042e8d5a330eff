/**
 * What the CRI e2e tests read off the host about a pod: the parent of an init process (the shim
 * serving it), the init pid from CRI's verbose status, and the runc state entries under a root.
 */
import fs from 'node:fs';
import { execa } from 'execa';

export const RUNC = '/usr/bin/runc';

export function ppidOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** The process's pid as CRI's verbose status reports it (`info` JSON, key `pid`). */
export function pidFromInfo(info: Record<string, string>, what: string): number {
  const raw = info.info;
  if (raw === undefined) throw new Error(`${what}: verbose status has no "info"`);
  const pid = (JSON.parse(raw) as { pid?: unknown }).pid;
  if (typeof pid !== 'number' || pid <= 0) throw new Error(`${what}: no pid in verbose info ${raw}`);
  return pid;
}

/** Container ids in a runc state root (none if runc never made the root). */
export async function runcList(root: string): Promise<string[]> {
  if (!fs.existsSync(root)) return [];
  const r = await execa(RUNC, ['--root', root, 'list', '-q'], { reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0) throw new Error(`runc --root ${root} list: exit ${String(r.exitCode)}: ${String(r.stderr)}`);
  return String(r.stdout).split('\n').map((s) => s.trim()).filter(Boolean);
}
