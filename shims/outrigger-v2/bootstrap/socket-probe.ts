/**
 * Whether a live shim serves a socket: `start` asks before spawning a daemon, the daemon asks
 * when its bind finds the path taken (a live shim of the same group, or a stale socket).
 */
import net from 'node:net';

/** True when something accepts connections on `path`. */
export function socketAnswers(path: string, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}
