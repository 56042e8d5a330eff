/**
 * Failure endings for a stream processor. containerd extracts until our stdout's EOF and then
 * asks for the processor's error without waiting for it to be reaped (containerd#6914); a `sleep`
 * that inherits only fd 1 keeps that EOF back until after we exited, so our stderr is recorded by
 * then and becomes the pull's error. Best effort: the withheld tail fails the pull regardless.
 */
import { spawn } from 'node:child_process';

let lingering = false;

/** Once per process: later failures find the EOF held back already. */
export function lingerStdout(seconds = '0.5'): void {
  if (lingering) return;
  lingering = true;
  try {
    const child = spawn('sleep', [seconds], { stdio: ['ignore', 1, 'ignore'], detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // no sleep binary: see above
  }
}

/** After a failure, a read blocked on stdin must not keep the process (and the pull) waiting. */
export function exitSoonAfterFailure(code = 1): void {
  setTimeout(() => process.exit(process.exitCode ?? code), 2000).unref();
}
