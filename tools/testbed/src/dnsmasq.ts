import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { join } from 'node:path';
import { findProgram, freePort, tempDir, waitFor } from './process.js';

/** TXT data: a string (split at 255 octets), or the character-strings exactly as published. */
export type TxtData = string | { strings: string[] };

/** TXT records by owner name; an array means several records at one name. */
export type DnsRecords = Record<string, TxtData | TxtData[]>;

export interface DnsServer {
  port: number;
  /** "127.0.0.1:port", as node:dns and DnsKeyResolver take it. */
  server: string;
  stop(): Promise<void>;
}

/** Split a record into TXT character-strings of at most 255 octets. */
export function txtStrings(record: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < record.length; i += 255) out.push(record.slice(i, i + 255));
  return out.length > 0 ? out : [''];
}

function quoteTxt(s: string): string {
  if (/[",\\\n]/.test(s)) throw new Error(`test TXT data cannot contain quotes, commas or backslashes: ${s}`);
  return `"${s}"`;
}

/**
 * Start a real DNS server (dnsmasq) on 127.0.0.1 at a free port, authoritative for
 * the given names only: no upstream, no /etc/hosts, no resolv.conf. Stop it with stop().
 */
export async function startDnsmasq(records: DnsRecords, options: { zones?: string[] } = {}): Promise<DnsServer> {
  const dnsmasq = findProgram('dnsmasq');
  if (!dnsmasq) throw new Error('dnsmasq is not installed (Debian package dnsmasq-base)');
  const port = await freePort();
  const dir = tempDir('inkan-dns-');
  const zones = new Set(options.zones ?? []);
  const lines = [
    `port=${port}`,
    'listen-address=127.0.0.1',
    'bind-interfaces',
    'no-resolv',
    'no-poll',
    'no-hosts',
    'no-daemon',
    'log-facility=-',
  ];
  if (process.getuid?.() === 0) lines.push('user=root');
  for (const [name, value] of Object.entries(records)) {
    const labels = name.split('.');
    zones.add(labels.slice(-2).join('.'));
    for (const record of Array.isArray(value) ? value : [value]) {
      const strings = typeof record === 'string' ? txtStrings(record) : record.strings;
      lines.push(`txt-record=${name},${strings.map(quoteTxt).join(',')}`);
    }
  }
  // Answer NXDOMAIN for anything else in these zones instead of forwarding it.
  for (const zone of zones) lines.push(`local=/${zone}/`);
  const conf = join(dir, 'dnsmasq.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);
  const child: ChildProcess = spawn(dnsmasq, ['-C', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const resolver = new Resolver({ timeout: 200, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  const probe = Object.keys(records)[0];
  try {
    await waitFor(async () => {
      if (exited) throw new Error(`dnsmasq exited: ${stderr}`);
      if (!probe) return true;
      return (await resolver.resolveTxt(probe)).length > 0;
    }, `dnsmasq on 127.0.0.1:${port}`);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  return {
    port,
    server: `127.0.0.1:${port}`,
    async stop() {
      if (!exited) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 2000))]);
        if (!exited) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
