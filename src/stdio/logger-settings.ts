/**
 * Shim-wide settings for binary:// loggers, read from the shim's environment (containerd's,
 * e.g. a systemd drop-in): the query string of a binary:// URI belongs to the logger, so it
 * cannot carry ours.
 *   OUTRIGGER_LOGGER_READY_TIMEOUT  how long Create/Start waits for the logger's ready signal
 *                                   (500ms, 30s, 2m; 0 waits forever as the Go shim does). Default 30s.
 *   OUTRIGGER_LOGGER_RESTARTS       how often a logger that died is started again (default 0).
 *   OUTRIGGER_LOGGER_FALLBACK_MAX_SIZE  size bound of each fallback file (default 10MB, 2 files).
 */
import { parseSize, SizeError } from './size-units.ts';
import { StdioError } from './process-io.ts';

export interface LoggerSettings {
  /** 0 = no timeout. */
  readonly readyTimeoutMs: number;
  readonly maxRestarts: number;
  /** First delay before a restart; doubled each time up to maxBackoffMs. */
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  readonly fallbackMaxSize: number;
  readonly fallbackMaxFiles: number;
  /** SIGTERM → SIGKILL grace at Delete (the Go shim's 12 s). */
  readonly stopGraceMs: number;
}

export const DEFAULT_LOGGER_SETTINGS: LoggerSettings = {
  readyTimeoutMs: 30_000,
  maxRestarts: 0,
  backoffMs: 1_000,
  maxBackoffMs: 30_000,
  fallbackMaxSize: 10_000_000,
  fallbackMaxFiles: 2,
  stopGraceMs: 12_000,
};

const DURATION_UNITS: ReadonlyMap<string, number> = new Map([['ms', 1], ['s', 1000], ['m', 60_000], ['', 1000]]);

/** `500ms`, `30s`, `2m`, a bare number of seconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|)\s*$/.exec(text);
  if (!m) throw new StdioError(`${what}="${text}": want a duration such as 500ms, 30s or 2m`);
  return Math.round(Number(m[1]) * DURATION_UNITS.get(m[2]!)!);
}

export function loggerSettingsFromEnv(env: NodeJS.ProcessEnv): LoggerSettings {
  const out = { ...DEFAULT_LOGGER_SETTINGS };
  const timeout = env.OUTRIGGER_LOGGER_READY_TIMEOUT;
  if (timeout !== undefined && timeout !== '') out.readyTimeoutMs = parseDuration(timeout, 'OUTRIGGER_LOGGER_READY_TIMEOUT');
  const restarts = env.OUTRIGGER_LOGGER_RESTARTS;
  if (restarts !== undefined && restarts !== '') {
    if (!/^\d+$/.test(restarts) || Number(restarts) > 1000) throw new StdioError(`OUTRIGGER_LOGGER_RESTARTS="${restarts}": want a whole number from 0 to 1000`);
    out.maxRestarts = Number(restarts);
  }
  const fallback = env.OUTRIGGER_LOGGER_FALLBACK_MAX_SIZE;
  if (fallback !== undefined && fallback !== '') {
    try {
      out.fallbackMaxSize = parseSize(fallback, 'OUTRIGGER_LOGGER_FALLBACK_MAX_SIZE');
    } catch (err) {
      throw new StdioError(err instanceof SizeError ? err.message : String(err));
    }
  }
  return out;
}
