/**
 * How outrigger-log writes a record:
 * - `cri`: `<RFC3339Nano> <stream> <P|F> <content>\n`, the CRI log format kubelet reads,
 *   content as raw bytes;
 * - `json`: one pino-style JSON object per line, `{"level":30,"time":<ms>,"container":…,
 *   "namespace":…,"stream":"stdout","msg":…}` (level 30 for stdout, 50 for stderr,
 *   `"partial":true` on a cut piece); content decoded as UTF-8 (invalid bytes become U+FFFD).
 */
import type { LogRecord } from './record-splitter.ts';
import { rfc3339Nano } from './wall-clock.ts';

export type LogFormat = 'cri' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['cri', 'json'];

export type StreamName = 'stdout' | 'stderr';

export interface FormatContext {
  readonly containerId: string;
  readonly namespace: string;
}

const NEWLINE = 0x0a;
const TAG_FULL = Buffer.from('F ');
const TAG_PARTIAL = Buffer.from('P ');

/** CRI lines for records read together: they share one timestamp, so the header is made once. */
export function renderCri(stream: StreamName, records: readonly LogRecord[], ns: bigint): Buffer {
  const head = Buffer.from(`${rfc3339Nano(ns)} ${stream} `, 'latin1');
  let size = 0;
  for (const r of records) size += head.length + 2 + r.content.length + 1;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const r of records) {
    at += head.copy(out, at);
    at += (r.partial ? TAG_PARTIAL : TAG_FULL).copy(out, at);
    at += r.content.copy(out, at);
    out[at++] = NEWLINE;
  }
  return out;
}

/** JSON lines for records read together; the fields before `msg` are the same for all of them. */
export function renderJson(stream: StreamName, records: readonly LogRecord[], ns: bigint, ctx: FormatContext): Buffer {
  const head = `{"level":${stream === 'stderr' ? 50 : 30},"time":${ns / 1_000_000n},"container":${JSON.stringify(ctx.containerId)},"namespace":${JSON.stringify(ctx.namespace)},"stream":"${stream}","msg":`;
  let text = '';
  for (const r of records) text += `${head}${JSON.stringify(r.content.toString('utf8'))}${r.partial ? ',"partial":true' : ''}}\n`;
  return Buffer.from(text, 'utf8');
}

export function formatCri(stream: StreamName, record: LogRecord, ns: bigint): Buffer {
  return renderCri(stream, [record], ns);
}

export function formatJson(stream: StreamName, record: LogRecord, ns: bigint, ctx: FormatContext): Buffer {
  return renderJson(stream, [record], ns, ctx);
}
