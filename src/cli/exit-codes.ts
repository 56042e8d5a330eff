/**
 * Process exit statuses shared by every outrigger tool. Stream processors are judged by
 * containerd on "zero or not", so anything but success must be non-zero; the split between
 * failure and usage lets scripts tell a bad invocation from bad input.
 */
export const ExitCode = {
  ok: 0,
  /** The tool ran and failed: bad input, failed verification, I/O error. */
  failure: 1,
  /** The command line was wrong: unknown option, missing argument. */
  usage: 2,
  /** The command exists in outrigger's plan but is not part of this build. */
  unavailable: 3,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error that ends the process with a chosen status and a one-line message on stderr. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode = ExitCode.failure, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}
