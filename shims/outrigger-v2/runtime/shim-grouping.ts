/**
 * How many containers one shim process serves, chosen in the runtime options TOML (the file
 * CRI's `options.ConfigPath` or `ctr --runtime-config-path` names), next to BinaryName:
 *
 *   ShimGrouping = "pod"    the default, as the Go runc shim: one process per CRI sandbox
 *                           (io.kubernetes.cri.sandbox-id / io.containerd.runc.v2.group), else
 *                           one per container
 *   ShimGrouping = "node"   one process per containerd namespace serves every container
 *
 * Read by `start`, which picks the socket from it; the daemon and Create ignore the key. The
 * spelling rules are those of the other option keys: case and underscores do not matter
 * (`shim_grouping`). Only this module and ./flat-toml.ts load, so `start` stays cheap.
 */
import { parseFlatToml } from './flat-toml.ts';

export type ShimGrouping = 'pod' | 'node';

export const SHIM_GROUPINGS: readonly ShimGrouping[] = ['pod', 'node'];

/** The option key as documented; matched without case and underscores. */
export const SHIM_GROUPING_KEY = 'ShimGrouping';

function isShimGrouping(v: string): v is ShimGrouping {
  return (SHIM_GROUPINGS as readonly string[]).includes(v);
}

/** The grouping a runtime options TOML asks for ("pod" when it names none). */
export function shimGroupingFromToml(text: string, source: string): ShimGrouping {
  const wanted = SHIM_GROUPING_KEY.toLowerCase();
  for (const [key, value] of parseFlatToml(text, source)) {
    if (key.replaceAll('_', '').toLowerCase() !== wanted) continue;
    if (typeof value !== 'string' || !isShimGrouping(value)) {
      throw new Error(`runtime options ${source}: ${SHIM_GROUPING_KEY} must be one of ${SHIM_GROUPINGS.map((g) => `"${g}"`).join(', ')}, not ${JSON.stringify(value)}`);
    }
    return value;
  }
  return 'pod';
}
