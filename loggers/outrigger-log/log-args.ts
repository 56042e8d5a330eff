/**
 * outrigger-log's settings from the bare `key value` arguments a binary:// shim passes (each
 * query key and its first value, in any order): `path` (required, absolute), `format` (cri or
 * json, default cri), `maxSize` and `maxFiles` (rotation as for file://, none without maxSize).
 */
import path from 'node:path';
import { CliError, ExitCode } from '../../src/cli/exit-codes.ts';
import { DEFAULT_MAX_FILES } from '../../src/stdio/rotating-file.ts';
import type { RotationPolicy } from '../../src/stdio/rotating-file.ts';
import { parseSize, SizeError } from '../../src/stdio/size-units.ts';
import { LOG_FORMATS } from './record-format.ts';
import type { LogFormat } from './record-format.ts';

export interface LogSettings {
  readonly path: string;
  readonly format: LogFormat;
  readonly rotation: RotationPolicy | undefined;
}

const KEYS = ['path', 'format', 'maxSize', 'maxFiles'] as const;
type Key = (typeof KEYS)[number];

export const LOG_ARGS_USAGE = 'path /abs/file.log [format cri|json] [maxSize 10MB] [maxFiles 5]';

function usage(message: string): CliError {
  return new CliError(`log: ${message} (want: ${LOG_ARGS_USAGE})`, ExitCode.usage);
}

export function parseLogArgs(args: readonly string[]): LogSettings {
  if (args.length % 2 !== 0) throw usage(`arguments come in key value pairs, got ${args.length}: ${args.join(' ')}`);
  const given = new Map<Key, string>();
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i]!;
    if (!(KEYS as readonly string[]).includes(key)) throw usage(`unknown key "${key}"`);
    if (given.has(key as Key)) throw usage(`key "${key}" given twice`);
    given.set(key as Key, args[i + 1]!);
  }
  const file = given.get('path');
  if (file === undefined || file === '') throw usage('path is required');
  if (!path.isAbsolute(file)) throw usage(`path "${file}" must be absolute`);
  const format = given.get('format') ?? 'cri';
  if (!(LOG_FORMATS as readonly string[]).includes(format)) throw usage(`format "${format}": want ${LOG_FORMATS.join(' or ')}`);
  let rotation: RotationPolicy | undefined;
  const sizeText = given.get('maxSize');
  const filesText = given.get('maxFiles');
  if (sizeText !== undefined) {
    let maxSize: number;
    try {
      maxSize = parseSize(sizeText, 'maxSize');
    } catch (err) {
      throw usage(err instanceof SizeError ? err.message : String(err));
    }
    let maxFiles = DEFAULT_MAX_FILES;
    if (filesText !== undefined) {
      if (!/^\d+$/.test(filesText) || Number(filesText) < 1 || Number(filesText) > 1000) throw usage(`maxFiles "${filesText}": want a whole number from 1 to 1000`);
      maxFiles = Number(filesText);
    }
    rotation = { maxSize, maxFiles };
  } else if (filesText !== undefined) {
    throw usage('maxFiles needs maxSize');
  }
  return { path: file, format: format as LogFormat, rotation };
}
