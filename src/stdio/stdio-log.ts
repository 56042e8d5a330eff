/** The slice of the shim's logger (pino) that the stdio layer writes warnings to. */
export interface StdioLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export const silentStdioLog: StdioLog = { warn() {}, info() {}, debug() {} };
