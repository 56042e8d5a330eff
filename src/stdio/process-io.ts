/**
 * The stdio of one container process (init or exec) as the task service sees it: three fds to
 * hand to the OCI runtime, a way to close stdin (CloseIO), and hooks for the process's start
 * and exit. Which transport backs it is chosen from the request's URIs by ./open-process-io.ts,
 * so file:// and binary:// loggers plug in there without the service changing.
 */
export type StdioFd = number | 'ignore';

export interface StdioRequest {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
}

/** Who the process's stdio must belong to (runc Options io_uid/io_gid; 0/0 leaves it as it is). */
export interface StdioOwner {
  readonly uid: number;
  readonly gid: number;
}

export interface ProcessIo {
  /** fds for the runtime CLI's stdin, stdout, stderr (passed through to the process). */
  readonly fds: readonly [StdioFd, StdioFd, StdioFd];
  /** The runtime has set the process up: drop the copies only the process needs now, and anything that holds back end-of-input. */
  afterStart(): void;
  /** CloseIO{stdin}: the process sees end of input once the client's writer is gone too. */
  closeStdin(): void;
  /** The process has exited: release what keeps readers waiting for more output. */
  processExited(): void;
  /** The process is deleted: release everything. Idempotent. */
  close(): void;
  /**
   * Output the process wrote that no client has read yet and that close() would drop with the
   * shim's end of a FIFO (0 where the transport keeps nothing back).
   */
  unreadOutputBytes?(): number;
  /**
   * Resolves once the client has read what the exited process wrote, or after `timeoutMs`; for
   * transports that keep nothing back it resolves at once.
   */
  outputRead?(timeoutMs: number): Promise<void>;
}

export class StdioError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StdioError';
  }
}
