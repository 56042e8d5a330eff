/** What `outrigger doctor` reports: one finding per check, each with the fix when it is not ok. */
export type Severity = 'ok' | 'info' | 'warn' | 'error';

export interface Finding {
  readonly check: string;
  readonly severity: Severity;
  readonly message: string;
  /** What to do about it; absent for ok/info. */
  readonly fix?: string;
}

export function formatFindings(findings: readonly Finding[]): string {
  const tag: Record<Severity, string> = { ok: 'ok   ', info: 'info ', warn: 'WARN ', error: 'ERROR' };
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`${tag[f.severity]} ${f.check}: ${f.message}`);
    if (f.fix) lines.push(`      fix: ${f.fix}`);
  }
  const errors = findings.filter((f) => f.severity === 'error').length;
  const warnings = findings.filter((f) => f.severity === 'warn').length;
  lines.push(errors === 0 ? `no errors${warnings > 0 ? `, ${warnings} warning(s)` : ''}` : `${errors} error(s), ${warnings} warning(s)`);
  return `${lines.join('\n')}\n`;
}

export function hasErrors(findings: readonly Finding[]): boolean {
  return findings.some((f) => f.severity === 'error');
}
