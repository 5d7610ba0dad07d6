import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * A server under test seen from outside through /proc (Linux): memory, CPU time, threads and
 * open descriptors of one process, read on demand. Each reader throws once the process is
 * gone (the caller decides whether that is a failure); nothing here writes or signals.
 */

/** USER_HZ: the unit of utime and stime in /proc/<pid>/stat (100 on every Linux Node runs on). */
const TICKS_PER_SECOND = 100;

/** The fields of /proc/<pid>/stat after the command name (state, parent, ...); throws once the process is gone. */
export function procStatFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the command name (field 2) is in parentheses and may itself hold spaces and ')'
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** One line of /proc/<pid>/status as text after its name, e.g. "1000 1000 1000 1000" for Uid ('' when absent). */
export function statusField(pid: number, name: string): string {
  return statusValue(readFileSync(`/proc/${pid}/status`, 'utf8'), name);
}

function statusValue(status: string, name: string): string {
  const line = status.split('\n').find((l) => l.startsWith(`${name}:`));
  return (line ?? '').slice(name.length + 1).trim();
}

/** The number in a line of /proc/<pid>/status given in kB (VmRSS, VmHWM, ...) or a count (Threads); NaN when absent. */
function statusNumber(status: string, name: string): number {
  return Number(/(\d+)/.exec(statusValue(status, name))?.[1] ?? Number.NaN);
}

/** A size from /proc/<pid>/status in KiB: VmRSS (resident now) or VmHWM (peak resident since start). */
export function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  return statusNumber(readFileSync(`/proc/${pid}/status`, 'utf8'), field);
}

/** VmRSS of a process, in KiB. */
export function rssKiB(pid: number): number {
  return statusKiB(pid, 'VmRSS');
}

/** CPU time a process has used so far (user + system), in seconds. */
export function cpuSeconds(pid: number): number {
  const fields = procStatFields(pid);
  // utime and stime: the 14th and 15th fields of stat, 12th and 13th after the name
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Open file descriptors of a process (entries of /proc/<pid>/fd). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** What the open descriptors are (socket, pipe, anon_inode, a path), counted by kind. */
export function describeFds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = '?';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      // closed meanwhile
    }
    const kind = target.replace(/\[\d+\]$/, '');
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}

/** Everything at once, for a soak's time series. */
export interface ProcessSample {
  /** VmRSS, KiB. */
  rssKiB: number;
  /** VmHWM (peak RSS since start), KiB. */
  hwmKiB: number;
  /** Entries in /proc/<pid>/fd. */
  fds: number;
  /** Threads (to tell a growing thread pool from a leak). */
  threads: number;
  /** CPU time used so far (user + system), seconds. */
  cpuS: number;
}

/** One sample of a live process (throws if it is gone). */
export function sampleProcess(pid: number): ProcessSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    rssKiB: statusNumber(status, 'VmRSS'),
    hwmKiB: statusNumber(status, 'VmHWM'),
    fds: fdCount(pid),
    threads: statusNumber(status, 'Threads'),
    cpuS: cpuSeconds(pid),
  };
}

/**
 * Samples a process's RSS every `everyMs` from now on: `peakMiB()` is the largest growth over
 * the RSS at the start; `stop()` ends the sampling (call it in a finally).
 */
export function sampleRss(pid: number, everyMs: number): { baseKiB: number; peakMiB(): number; stop(): void } {
  const baseKiB = rssKiB(pid);
  let peak = baseKiB;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssKiB(pid));
    } catch {
      // the process is gone: the caller's assertions say so
    }
  }, everyMs);
  return { baseKiB, peakMiB: () => (peak - baseKiB) / 1024, stop: () => clearInterval(timer) };
}
