/**
 * `delete`: containerd runs it after the connection to a shim closed (a crash, or the normal end
 * after Shutdown) and when a shim cannot be reconnected (shim-protocol.md §2.8). It must
 * survive everything being gone already, and must not disturb a shim that still serves other
 * containers: it only force-deletes this container in the OCI runtime (with the binary and root
 * the daemon saved in options.json) and unmounts its rootfs. stdout is the binary
 * DeleteResponse (pid from init.pid, 137, now); warnings go to stderr, which containerd logs.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ShimFlags } from '../flags.ts';
import { DEFAULT_OPTIONS, isRuntimeOptions, OPTIONS_FILE, rootFor } from '../runtime/saved-options.ts';
import type { RuntimeOptions } from '../runtime/saved-options.ts';
import { unmountRootfs } from '../runtime/rootfs.ts';
import { encodeDeleteResponse, epochNow } from './delete-response.ts';

/** uint32(-1): what the Go shim reports when init.pid cannot be read. */
const UNKNOWN_PID = 0xffffffff;
const SIGKILL_STATUS = 128 + 9;

function savedOptions(bundle: string): RuntimeOptions {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(path.join(bundle, OPTIONS_FILE), 'utf8'));
    return isRuntimeOptions(parsed) ? parsed : DEFAULT_OPTIONS;
  } catch {
    return DEFAULT_OPTIONS;
  }
}

function warn(flags: ShimFlags, what: string, err: unknown): void {
  process.stderr.write(`shim delete ${flags.namespace}/${flags.id}: ${what}: ${err instanceof Error ? err.message : String(err)}\n`);
}

export async function runDelete(flags: ShimFlags): Promise<void> {
  const bundle = flags.bundle !== '' ? flags.bundle : process.cwd();
  const options = savedOptions(bundle);
  // runc and crun keep a container's state in <root>/<id>; without it there is nothing to delete
  // (the normal case after a clean Delete), and containerd waits for us on every task teardown,
  // so the runtime adapter (and node:child_process with it) loads only when there is.
  if (fs.existsSync(path.join(rootFor(options, flags.namespace), flags.id))) {
    const { OciRuntime } = await import('../runtime/oci-runtime.ts');
    const runtime = new OciRuntime(options, flags.namespace, fs.existsSync(bundle) ? bundle : undefined);
    await runtime.delete(flags.id, true).catch((err: unknown) => {
      if (!/does not exist|not found|no such/i.test(String(err))) warn(flags, 'runtime delete', err);
    });
  }
  await unmountRootfs(bundle).catch((err: unknown) => warn(flags, 'unmount rootfs', err));
  let pid = UNKNOWN_PID;
  try {
    const n = Number(fs.readFileSync(path.join(bundle, 'init.pid'), 'utf8').trim());
    if (Number.isInteger(n) && n > 0) pid = n;
  } catch {
    // the bundle or the pid file is gone: report the unknown pid, as Go does
  }
  process.stdout.write(encodeDeleteResponse({ pid, exitStatus: SIGKILL_STATUS, exitedAt: epochNow() }));
}
