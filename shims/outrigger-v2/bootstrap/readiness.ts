/**
 * The daemon tells `start` how binding its socket went over an inherited pipe (fd 3), one JSON
 * line, then closes it: `start` must not print an address before the socket accepts
 * connections, and must learn when another shim of the same group already serves it.
 */
export type Readiness =
  | { readonly state: 'listening' }
  /** A live shim of the same group already owns the socket; this daemon exits. */
  | { readonly state: 'exists' }
  | { readonly state: 'failed'; readonly error: string };

export const READINESS_FD = 3;

export function encodeReadiness(r: Readiness): string {
  return `${JSON.stringify(r)}\n`;
}

export function decodeReadiness(text: string): Readiness {
  const line = text.split('\n').find((l) => l.trim() !== '');
  if (line === undefined) return { state: 'failed', error: 'shim daemon exited without reporting' };
  try {
    const r = JSON.parse(line) as Readiness;
    if (r.state === 'listening' || r.state === 'exists' || (r.state === 'failed' && typeof r.error === 'string')) return r;
  } catch {
    // fall through
  }
  return { state: 'failed', error: `shim daemon reported nonsense: ${line.slice(0, 200)}` };
}
