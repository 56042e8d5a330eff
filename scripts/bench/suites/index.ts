import type { Benchmark } from '../model.ts';
import { binarySize } from './binary-size.ts';
import { seaSettings } from './sea-settings.ts';
import { startup } from './startup.ts';
import { ttrpcState } from './ttrpc.ts';
import { gzipDecode, zstdDecode, zstdImport } from './zstd.ts';
import { shimIdleMemory, shimRunLatency } from './shim.ts';

/** Every benchmark, in report order. */
export const SUITES: readonly Benchmark[] = [startup, binarySize, seaSettings, ttrpcState, zstdDecode, gzipDecode, zstdImport, shimRunLatency, shimIdleMemory];
