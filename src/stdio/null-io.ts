/** No stdio at all (all three URIs empty: CRI pause containers, `ctr --null-io`): /dev/null. */
import type { ProcessIo, StdioFd } from './process-io.ts';

export class NullIo implements ProcessIo {
  readonly fds: readonly [StdioFd, StdioFd, StdioFd] = ['ignore', 'ignore', 'ignore'];
  afterStart(): void {}
  closeStdin(): void {}
  processExited(): void {}
  close(): void {}
}
