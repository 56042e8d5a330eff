/**
 * The CI-sized soak (scripts/bench/soak.ts): a warm-up wave and one measured wave of 10
 * containers each under containerd-shim-outrigger-v2, half of them in a long-lived sandbox
 * group shim, plus execs in its anchor. Every container's output and exit code right, no
 * zombie, no extra shim left after a wave, mounts back to the anchor's, the group shim's fds and
 * RSS within the soak's tolerances, and the private containerd's teardown finds nothing left.
 * `npm run soak -- --minutes N` is the long version.
 */
import { describe, expect, it } from 'vitest';
import { runSoak } from '../../scripts/bench/soak.ts';

describe('soak, CI-sized', () => {
  it('two waves of 10 containers: nothing lost, nothing leaked', async () => {
    const lines: string[] = [];
    const result = await runSoak({ waves: 1, perWave: 10, concurrency: 5, execsPerWave: 5, log: (l) => lines.push(l) });
    expect(result.failures, lines.join('\n')).toEqual([]);
    expect(result.lost).toBe(0);
    expect(result.tried).toBe(30);
    expect(result.samples.map((s) => s.wave)).toEqual([0, 1]);
    for (const s of result.samples) {
      expect(s.zombies).toBe(0);
      expect(s.extraShims).toBe(0);
      // the anchor's rootfs is the only mount between waves
      expect(s.mounts).toBe(1);
    }
  }, 600_000);
});
