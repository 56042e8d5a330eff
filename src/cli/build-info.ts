/**
 * What `--version` reports. The build (scripts/build.ts) replaces the two constants with the
 * package version and the git commit; running from source they fall back to "dev".
 */
declare const __OUTRIGGER_VERSION__: string | undefined;
declare const __OUTRIGGER_COMMIT__: string | undefined;

export interface BuildInfo {
  readonly version: string;
  readonly commit: string;
  readonly node: string;
}

export const buildInfo: BuildInfo = {
  version: typeof __OUTRIGGER_VERSION__ === 'string' ? __OUTRIGGER_VERSION__ : 'dev',
  commit: typeof __OUTRIGGER_COMMIT__ === 'string' ? __OUTRIGGER_COMMIT__ : 'dev',
  node: process.version,
};

export function versionLine(info: BuildInfo = buildInfo): string {
  return `outrigger ${info.version} (node ${info.node}, commit ${info.commit})`;
}
