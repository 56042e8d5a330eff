import type { Benchmark } from '../model.ts';
import { binarySize } from './binary-size.ts';
import { seaSettings } from './sea-settings.ts';
import { shimIdleMemory, shimNodeMemory, shimPodMemory, shimRunLatency } from './shim.ts';
import { startup } from './startup.ts';
import { estargzBuild, estargzUnpack } from './estargz.ts';
import { ttrpcState } from './ttrpc.ts';
import { stdioBinary, stdioFile } from './stdio-logging.ts';
import { gzipDecode, zstdDecode, zstdImport } from './zstd.ts';
import { imgcryptDecrypt } from './imgcrypt.ts';

/** Every benchmark, in report order. */
export const SUITES: readonly Benchmark[] = [startup, binarySize, seaSettings, ttrpcState, zstdDecode, gzipDecode, zstdImport, estargzBuild, estargzUnpack, shimRunLatency, shimIdleMemory, shimPodMemory, shimNodeMemory, stdioFile, stdioBinary, imgcryptDecrypt];
