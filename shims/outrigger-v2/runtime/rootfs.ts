/**
 * Mounting CreateTaskRequest.rootfs onto `<bundle>/rootfs` and taking it down again. The mount
 * list comes from containerd's snapshotter (overlay with lowerdir/upperdir/workdir, or a bind
 * for native); util-linux mount(8) applies type, source and options exactly as listed, since
 * Node has no mount(2). Unmount is lazy as a last resort so a busy rootfs cannot wedge delete.
 */
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * mount(8)/umount(8). node:child_process loads on the first call: the `delete` process mostly
 * finds nothing mounted (the daemon's Delete unmounted) and so never pays its ≈ 2 ms load.
 */
function run(file: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(process.getBuiltinModule('node:child_process').execFile)(file, args);
}

export interface MountSpec {
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

export function rootfsPath(bundle: string): string {
  return path.join(bundle, 'rootfs');
}

export async function mountRootfs(containerId: string, bundle: string, mounts: readonly MountSpec[]): Promise<void> {
  const target = rootfsPath(bundle);
  fs.mkdirSync(target, { recursive: true, mode: 0o711 });
  const done: number[] = [];
  for (const [i, m] of mounts.entries()) {
    const args = ['-t', m.type === '' ? 'none' : m.type];
    if (m.options.length > 0) args.push('-o', m.options.join(','));
    args.push(m.source, target);
    try {
      await run('mount', args);
      done.push(i);
    } catch (err) {
      for (const _ of done) await unmountRootfs(bundle).catch(() => undefined);
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new Error(`create ${containerId}: mount rootfs ${i} (${m.type} ${m.source}) on ${target}: ${stderr || String(err)}`, { cause: err });
    }
  }
}

/** True when something is mounted exactly at `dir`. */
export function isMountPoint(dir: string): boolean {
  const resolved = path.resolve(dir);
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  for (const line of text.split('\n')) {
    const mountPoint = line.split(' ')[4];
    if (mountPoint !== undefined && unescapeMountinfo(mountPoint) === resolved) return true;
  }
  return false;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Unmounts everything stacked on `<bundle>/rootfs`; a no-op when nothing is mounted. */
export async function unmountRootfs(bundle: string): Promise<void> {
  const target = rootfsPath(bundle);
  for (let i = 0; i < 16 && isMountPoint(target); i++) {
    try {
      await run('umount', [target]);
    } catch {
      await run('umount', ['-l', target]);
    }
  }
}
