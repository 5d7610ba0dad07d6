/**
 * What the soak watches in inkan-milterd from outside besides /proc (the testbed's
 * sampleProcess): the daemon's own Prometheus metrics (heap, connections, signatures) over
 * one short-lived loopback HTTP request each.
 */
import { request } from 'node:http';

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
