/**
 * What the soak watches in inkan-milterd from outside: resident memory and open file
 * descriptors from /proc, and the daemon's own Prometheus metrics (heap, connections,
 * signatures) over one short-lived loopback HTTP request each.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { request } from 'node:http';

export interface ProcSample {
  /** Milliseconds since the soak started. */
  at: number;
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

/** USER_HZ: the unit of utime and stime in /proc/<pid>/stat (100 on every Linux Node runs on). */
const TICKS_PER_SECOND = 100;

function statusField(status: string, name: string): number {
  const line = status.split('\n').find((l) => l.startsWith(`${name}:`));
  return Number((line ?? '').replace(/\D+/g, ''));
}

/** One sample of a live process (throws if it is gone). */
export function sampleProcess(pid: number, at: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  // stat: "pid (comm) state ..." with utime and stime the 14th and 15th fields
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    at,
    rssKiB: statusField(status, 'VmRSS'),
    hwmKiB: statusField(status, 'VmHWM'),
    fds: readdirSync(`/proc/${pid}/fd`).length,
    threads: statusField(status, 'Threads'),
    cpuS: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND,
  };
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

/** Prometheus text as name{labels} -> value (comments skipped). */
export type MetricValues = Map<string, number>;

/** GET /metrics once (Connection: close, no keep-alive agent), bounded by timeoutMs. */
export function scrapeMetrics(hostPort: string, timeoutMs = 5000): Promise<MetricValues> {
  const [host, port] = [hostPort.slice(0, hostPort.lastIndexOf(':')), Number(hostPort.slice(hostPort.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/metrics', agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const values: MetricValues = new Map();
        for (const line of Buffer.concat(parts).toString('utf8').split('\n')) {
          if (line === '' || line.startsWith('#')) continue;
          const space = line.lastIndexOf(' ');
          values.set(line.slice(0, space), Number(line.slice(space + 1)));
        }
        resolve(values);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no metrics from ${hostPort} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Sum of every series of a metric (all label sets), or of those whose labels include `match`. */
export function metricSum(values: MetricValues | undefined, name: string, match = ''): number {
  if (!values) return Number.NaN;
  let sum = 0;
  let found = false;
  for (const [key, value] of values) {
    const base = key.includes('{') ? key.slice(0, key.indexOf('{')) : key;
    if (base === name && key.includes(match)) {
      sum += value;
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}
