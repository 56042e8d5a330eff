/**
 * Turns commander's raw values for `outrigger zstd` into a checked plan. Compression levels
 * (`-1` … `-19`, `-20` … `-22` with `--ultra`) are not expressible as commander options, so they
 * arrive among the operands and are picked out here, like the zstd CLI reads them.
 */
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';

export interface RawZstdOptions {
  readonly decompress?: boolean;
  readonly compress?: boolean;
  readonly test?: boolean;
  readonly stdout?: boolean;
  readonly output?: string;
  readonly force?: boolean;
  readonly keep?: boolean;
  readonly rm?: boolean;
  readonly quiet: number;
  readonly verbose: number;
  readonly long?: string | boolean;
  readonly memory?: string;
  readonly check: boolean;
  readonly ultra?: boolean;
  readonly threads?: string;
  readonly buffer?: string;
  readonly logFile?: string;
}

export type Mode = 'compress' | 'decompress' | 'test';

export interface ZstdPlan {
  readonly mode: Mode;
  /** File names; '-' is stdin. Empty list means stdin. */
  readonly inputs: readonly string[];
  readonly toStdout: boolean;
  readonly outputFile?: string;
  readonly force: boolean;
  readonly removeInputs: boolean;
  readonly quiet: number;
  readonly verbose: number;
  readonly level: number;
  readonly longWindowLog?: number;
  /** Decompression window limit in bytes. */
  readonly maxWindowSize: number;
  readonly checksum: boolean;
  readonly bufferSize: number;
  readonly logFile?: string;
  readonly ignoredThreads: boolean;
}

/** The zstd CLI's default decompression window limit: 2^27 bytes (ZSTD_WINDOWLOG_LIMIT_DEFAULT). */
export const DEFAULT_WINDOW_LOG_MAX = 27;
/** Largest window log zstd supports on 64-bit hosts (ZSTD_WINDOWLOG_MAX_64). */
const WINDOW_LOG_ABSOLUTE_MAX = 31;
/**
 * Read and decoder-output buffer size. Measured on a 718 MB /usr layer with the pooled decoder
 * (zstd -dc took 0.66 s): 512 KiB 0.94 s, 1 MiB 0.70 s, 2 MiB 0.71 s with 8 MB more peak RSS.
 */
export const DEFAULT_BUFFER_SIZE = 1024 * 1024;
/** Fresh-buffer input bytes between young-generation collections (garbage-pacer.ts). */
export const GC_EVERY = 16 * 1024 * 1024;

const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/** A byte count as the zstd CLI writes it: `134217728`, `128M`, `128MB`, `128MiB` (all binary units). */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new CliError(`${what}: cannot read size '${text}' (use e.g. 128MiB, 512K, 1048576)`, ExitCode.usage);
  const value = Number(m[1]) * unit;
  if (!Number.isSafeInteger(value) || value <= 0) throw new CliError(`${what}: size '${text}' is out of range`, ExitCode.usage);
  return value;
}

function parseWindowLog(value: string | boolean | undefined): number | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return DEFAULT_WINDOW_LOG_MAX;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 10 || n > WINDOW_LOG_ABSOLUTE_MAX) {
    throw new CliError(`--long=${value}: window log must be an integer from 10 to ${WINDOW_LOG_ABSOLUTE_MAX}`, ExitCode.usage);
  }
  return n;
}

export function planZstd(operands: readonly string[], raw: RawZstdOptions): ZstdPlan {
  const inputs: string[] = [];
  let level: number | undefined;
  for (const operand of operands) {
    const lvl = /^-(\d+)$/.exec(operand);
    if (lvl) {
      level = Number(lvl[1]);
      continue;
    }
    if (operand.startsWith('-') && operand !== '-') {
      throw new CliError(`unknown option '${operand}' (see outrigger zstd --help)`, ExitCode.usage);
    }
    inputs.push(operand);
  }
  const maxLevel = raw.ultra ? 22 : 19;
  if (level !== undefined && (level < 1 || level > maxLevel)) {
    throw new CliError(`compression level -${level} is out of range 1..${maxLevel}${level > 19 && !raw.ultra ? ' (levels above 19 need --ultra)' : ''}`, ExitCode.usage);
  }
  const modes = [raw.decompress && 'decompress', raw.compress && 'compress', raw.test && 'test'].filter(Boolean);
  if (raw.decompress && raw.compress) throw new CliError('-d and -z contradict each other', ExitCode.usage);
  const mode: Mode = raw.test ? 'test' : raw.decompress ? 'decompress' : 'compress';
  if (modes.length > 1 && mode === 'test' && raw.compress) throw new CliError('-t tests compressed input; it cannot be combined with -z', ExitCode.usage);
  if (raw.stdout && raw.output !== undefined) throw new CliError('-c and -o contradict each other', ExitCode.usage);
  if (raw.keep && raw.rm) throw new CliError('-k and --rm contradict each other', ExitCode.usage);

  const longWindowLog = parseWindowLog(raw.long);
  let maxWindowSize = 2 ** DEFAULT_WINDOW_LOG_MAX;
  if (longWindowLog !== undefined) maxWindowSize = Math.max(maxWindowSize, 2 ** longWindowLog);
  if (raw.memory !== undefined) {
    maxWindowSize = parseSize(raw.memory, '--memory');
    if (maxWindowSize > 2 ** WINDOW_LOG_ABSOLUTE_MAX) throw new CliError(`--memory=${raw.memory} exceeds zstd's largest window (2 GiB)`, ExitCode.usage);
  }
  const bufferSize = raw.buffer === undefined ? DEFAULT_BUFFER_SIZE : parseSize(raw.buffer, '--buffer');
  if (bufferSize < 4096 || bufferSize > 64 * 1024 ** 2) throw new CliError(`--buffer=${raw.buffer} must be between 4KiB and 64MiB`, ExitCode.usage);

  return {
    mode,
    inputs,
    toStdout: raw.stdout === true || (raw.output === undefined && (inputs.length === 0 || inputs.every((i) => i === '-'))),
    outputFile: raw.output,
    force: raw.force === true,
    removeInputs: raw.rm === true && raw.stdout !== true,
    quiet: raw.quiet,
    verbose: raw.verbose,
    level: level ?? 3,
    longWindowLog,
    maxWindowSize,
    checksum: raw.check,
    bufferSize,
    logFile: raw.logFile,
    ignoredThreads: raw.threads !== undefined,
  };
}
