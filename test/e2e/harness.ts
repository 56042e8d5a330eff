/**
 * Vitest face of the private-containerd harness (scripts/dev-containerd). Teardown is registered
 * with vitest so it runs whether the test passed, failed or threw; a teardown that leaves anything
 * behind fails the hook, so leaks surface as test failures.
 */
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import {
  PrivateContainerd,
  type PrivateContainerdOptions,
} from '../../scripts/dev-containerd/private-containerd.ts';

export {
  describeLeftovers,
  type CtrResult,
  type Leftovers,
  leftoversEmpty,
  pidAlive,
  PrivateContainerd,
  type PrivateContainerdOptions,
  type RunOptions,
  type RunResult,
  shimSocketPath,
  uniqueId,
} from '../../scripts/dev-containerd/private-containerd.ts';

/** Inside a test: starts containerd and stops it when that test finishes, pass or fail. */
export async function startContainerd(opts: PrivateContainerdOptions = {}): Promise<PrivateContainerd> {
  const ctd = await PrivateContainerd.start(opts);
  onTestFinished(() => ctd.stop());
  return ctd;
}

/**
 * At describe/file level: one containerd for every test in the block, started in beforeAll and
 * stopped in afterAll (also when a test or beforeAll failed). Call the returned function inside tests.
 */
export function useContainerd(opts: PrivateContainerdOptions = {}): () => PrivateContainerd {
  let ctd: PrivateContainerd | undefined;
  beforeAll(async () => {
    ctd = await PrivateContainerd.start(opts);
  });
  afterAll(async () => {
    await ctd?.stop();
  });
  return () => {
    if (!ctd) throw new Error('useContainerd: containerd is not running (did beforeAll fail?)');
    return ctd;
  };
}
