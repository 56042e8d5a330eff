/**
 * CPU time of another process from /proc/PID/stat: utime + stime, which count every thread the
 * process ever had (a Go server's goroutines run on many threads; libuv has its pool).
 */
import fs from 'node:fs';

/** USER_HZ, the unit of the stat times: 100 on every Linux architecture Node and Go ship for. */
const TICKS_PER_SECOND = 100;

/** utime + stime in milliseconds from the text of /proc/PID/stat. */
export function cpuMsFromStat(stat: string): number {
  // comm (field 2) is in parentheses and may itself hold spaces and ')'; fields after the last ')'
  // start with state (field 3), so utime (14) and stime (15) are at offsets 11 and 12 there.
  const end = stat.lastIndexOf(')');
  if (end < 0) throw new Error(`process-cpu: not a /proc/PID/stat line: ${JSON.stringify(stat.slice(0, 80))}`);
  const fields = stat.slice(end + 2).trim().split(/\s+/);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isInteger(utime) || !Number.isInteger(stime)) {
    throw new Error(`process-cpu: no utime/stime in /proc/PID/stat: ${JSON.stringify(stat.slice(0, 120))}`);
  }
  return ((utime + stime) * 1000) / TICKS_PER_SECOND;
}

/** CPU time a running process has used so far, in milliseconds (10 ms resolution). */
export function processCpuMs(pid: number): number {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    throw new Error(`process-cpu: cannot read /proc/${pid}/stat (is the process gone?): ${(err as Error).message}`);
  }
  return cpuMsFromStat(stat);
}
