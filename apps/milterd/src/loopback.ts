import { BlockList, isIP } from 'node:net';

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/**
 * Is `host` a loopback address: an IP address in 127.0.0.0/8 or ::1 (IPv4-mapped IPv6 forms
 * of 127.0.0.0/8 too), or, with `allowLocalhost`, exactly the name "localhost"? Any other
 * name is not, whatever it looks like ("127.attacker.example" is a name, not an address).
 */
export function isLoopbackHost(host: string, options: { allowLocalhost?: boolean } = {}): boolean {
  if (options.allowLocalhost && host === 'localhost') return true;
  const family = isIP(host);
  if (family === 0) return false;
  return loopback.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/** MetricsListen's value, `address:port` (`[::1]:9100` for IPv6): the address must be a loopback IP address. */
export function parseMetricsListen(hostPort: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(hostPort);
  const host = m?.[1] ?? '';
  const port = Number(m?.[2]);
  if (!m || !isIP(host) || !(port >= 0 && port <= 65535)) throw new Error(`MetricsListen takes address:port, not "${hostPort}"`);
  if (!isLoopbackHost(host)) throw new Error(`MetricsListen must be a loopback address (127.0.0.0/8 or ::1), not ${host}`);
  return { host, port };
}
