/**
 * rspamd 3.4 (Debian's package) as a signing milter peer (issue #19 item 6): its rspamd_proxy
 * worker in milter mode signs with dkim_signing, DKIM-only and with Debian's stock modules, at
 * one and two proxy workers. Same key, same 4.6 KB message and the same milter client as
 * inkan-milterd and OpenDKIM; the peers take turns within each round (interleaved rounds), and
 * a row's ratio is the median of its rounds' ratios. Then Postfix end to end, the same way.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryKeyResolver, verifyMessage } from '@inkan/dkim-core';
import { runTransaction } from '@inkan/milter-protocol';
import { postfixRun } from './postfix-run.js';
import {
  findProgram,
  type RspamdInstance,
  type RspamdOptions,
  rspamdMissing,
  startDnsmasq,
  startRspamd,
} from '@inkan/testbed';
import { message as corpusMessage } from '../../../packages/dkim-core/bench/corpus.js';

type Driver = 'miltertest' | 'MilterClient';

export interface RspamdPeerOptions {
  quick: boolean;
  dir: string;
  /** The PEM key inkan-milterd signs with, and its DNS record (selector bench, example.org). */
  keyFile: string;
  keyRecord: string;
  /** The inkan-milterd instances of the milter table: one per socket kind. */
  inkan: { tcp: string; unix: string; tcpPid: number; unixPid: number };
  milterRate: (spec: string, clients: number, total: number, file: string, driver: Driver) => Promise<number>;
  cpuSeconds: (pid: number) => number;
  table: (title: string, head: string[], rows: string[][]) => void;
  fmt: (n: number, digits?: number) => string;
}

interface Peer {
  name: string;
  tcp: string;
  unix: string;
  /** CPU seconds so far of the process(es) behind a socket kind. */
  cpu: (socket: 'tcp' | 'unix') => number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** One signing transaction through `spec`; throws unless the reply adds a DKIM-Signature that verifies. */
async function assertSigns(spec: string, msg: Buffer, resolver: MemoryKeyResolver): Promise<void> {
  const tx = {
    client: { address: '127.0.0.1', hostname: 'localhost' },
    sender: 'joe@example.org',
    recipients: ['suzie@example.net'],
    message: msg,
    macros: { M: { i: 'CHECK' } },
  };
  const r = await runTransaction(spec, tx, { timeoutMs: 30_000 });
  const sig = r.endOfMessage?.modifications.find(
    (m) => (m.type === 'insertHeader' || m.type === 'addHeader') && /^dkim-signature$/i.test(m.name),
  );
  if (!sig || !('value' in sig)) throw new Error(`${spec} did not add a DKIM-Signature`);
  const field = Buffer.from(`DKIM-Signature:${sig.value.toString('latin1').replace(/\r?\n/g, '\r\n')}\r\n`, 'latin1');
  const result = (await verifyMessage(Buffer.concat([field, msg]), { resolver }))[0]?.result;
  if (result !== 'pass') throw new Error(`${spec}: its DKIM-Signature does not verify (${result})`);
}

export async function rspamdPeer(o: RspamdPeerOptions): Promise<void> {
  const missing = rspamdMissing();
  if (missing) {
    console.log(`\n(${missing}: no rspamd figures)`);
    return;
  }
  const { fmt, quick } = o;
  const resolver = new MemoryKeyResolver({ 'bench._domainkey.example.org': o.keyRecord });
  // The only DNS server rspamd may ask: the key, and NXDOMAIN for every other name.
  const dns = await startDnsmasq({ 'bench._domainkey.example.org': o.keyRecord }, { zones: ['#'] });
  const setups: [string, Pick<RspamdOptions, 'modules' | 'workers'>][] = quick
    ? [['rspamd DKIM-only, 1 worker', { modules: 'dkim-only', workers: 1 }]]
    : [
        ['rspamd DKIM-only, 1 worker', { modules: 'dkim-only', workers: 1 }],
        ['rspamd DKIM-only, 2 workers', { modules: 'dkim-only', workers: 2 }],
        ['rspamd stock, 1 worker', { modules: 'stock', workers: 1 }],
        ['rspamd stock, 2 workers', { modules: 'stock', workers: 2 }],
      ];
  const instances: RspamdInstance[] = [];
  try {
    const file = join(o.dir, 'rspamd-4600.eml');
    const msg = corpusMessage(4600);
    writeFileSync(file, msg);
    const peers: Peer[] = [
      {
        name: 'inkan-milterd',
        tcp: o.inkan.tcp,
        unix: o.inkan.unix,
        cpu: (s) => o.cpuSeconds(s === 'tcp' ? o.inkan.tcpPid : o.inkan.unixPid),
      },
    ];
    for (const [name, setup] of setups) {
      const r = await startRspamd({ ...setup, keyFile: o.keyFile, domain: 'example.org', selector: 'bench', nameserver: dns.server });
      instances.push(r);
      peers.push({ name, tcp: r.tcp, unix: r.unix, cpu: () => r.cpuSeconds() });
    }
    for (const p of peers) for (const spec of [p.unix, p.tcp]) await assertSigns(spec, msg, resolver);

    const miltertest = findProgram('miltertest') !== undefined;
    const unixDriver: Driver = miltertest ? 'miltertest' : 'MilterClient';
    const total = quick ? 60 : 1000;
    const rounds = quick ? 1 : 3;
    // miltertest over TCP leaves Nagle on and measures itself (about 11/s whatever the milter):
    // those rows of the main table are not repeated here.
    const runs: { socket: 'unix' | 'tcp'; clients: number; driver: Driver }[] = [
      { socket: 'unix', clients: 1, driver: unixDriver },
      { socket: 'unix', clients: 10, driver: unixDriver },
      { socket: 'tcp', clients: 1, driver: 'MilterClient' },
      { socket: 'tcp', clients: 10, driver: 'MilterClient' },
    ];
    for (const p of peers) {
      await o.milterRate(p.unix, 10, quick ? 20 : 300, file, unixDriver);
      await o.milterRate(p.tcp, 10, quick ? 20 : 300, file, 'MilterClient');
    }
    const rows: string[][] = [];
    const dkimOnly = peers.filter((p) => p.name.includes('DKIM-only'));
    const stock = peers.filter((p) => p.name.includes('stock'));
    for (const run of runs) {
      const rates = peers.map(() => [] as number[]);
      const cpu = peers.map(() => [] as number[]);
      for (let round = 0; round < rounds; round++) {
        for (const [i, p] of peers.entries()) {
          const before = p.cpu(run.socket);
          rates[i]?.push(await o.milterRate(run.socket === 'unix' ? p.unix : p.tcp, run.clients, total, file, run.driver));
          cpu[i]?.push(((p.cpu(run.socket) - before) * 1000) / total);
        }
      }
      // The ratio against a configuration at its best worker count for this row (higher median rate).
      const best = (group: Peer[]) => {
        const idx = group.map((p) => peers.indexOf(p));
        return idx.reduce((a, b) => (median(rates[b] ?? []) > median(rates[a] ?? []) ? b : a), idx[0] as number);
      };
      const ratioTo = (group: Peer[]) => {
        if (group.length === 0) return '-';
        const b = best(group);
        const rs = (rates[0] ?? []).map((r, k) => r / ((rates[b] ?? [])[k] as number));
        return `${fmt(median(rs), 2)}× (${peers[b]?.name.replace(/.*, /, '')})`;
      };
      rows.push([
        `${run.socket}, ${run.clients} client${run.clients > 1 ? 's' : ''}, ${run.driver}`,
        ...peers.map((_, i) => `${fmt(median(rates[i] ?? []))} (${fmt(median(cpu[i] ?? []), 2)} ms)`),
        ratioTo(dkimOnly),
        ratioTo(stock),
      ]);
    }
    o.table(
      `milter signing against rspamd 3.4, 4.6 KB messages, ${total} transactions a cell, median of ${rounds} interleaved round${rounds > 1 ? 's' : ''} (msgs/s, milter CPU per message; ratio: inkan / rspamd at its best worker count)`,
      ['socket, clients, client', ...peers.map((p) => p.name), 'vs DKIM-only', ...(stock.length ? ['vs stock'] : [])],
      rows.map((r) => (stock.length ? r : r.slice(0, -1))),
    );
    await endToEnd(
      o,
      peers.filter((p) => !p.name.includes('stock')),
      rounds,
    );
  } finally {
    for (const r of instances) await r.stop();
    await dns.stop();
  }
}

/** Postfix end to end (smtp-source, 10 sessions): no milter, inkan and rspamd DKIM-only, taking turns in each round. */
async function endToEnd(o: RspamdPeerOptions, peers: Peer[], rounds: number): Promise<void> {
  const smtpSource = findProgram('smtp-source');
  if (!smtpSource) return;
  const count = o.quick ? 100 : 2000;
  const setups: [string, string | undefined][] = [['no milter', undefined]];
  for (const p of peers)
    setups.push([`${p.name}, TCP`, p.tcp.replace(/^inet:(\d+)@(.*)$/, 'inet:$2:$1')], [`${p.name}, unix socket`, p.unix]);
  const rates = setups.map(() => [] as number[]);
  const signed = setups.map(() => 0);
  for (let round = 0; round < rounds; round++) {
    for (const [i, [, milter]] of setups.entries()) {
      const run = await postfixRun(smtpSource, milter, count);
      rates[i]?.push(run.deliveredPerSecond);
      signed[i] = (signed[i] as number) + run.signed;
    }
  }
  const rows = setups.map(([name, milter], i) => {
    const against = (rates[i] ?? []).map((r, k) => r / ((rates[0] ?? [])[k] as number));
    return [name, o.fmt(median(rates[i] ?? [])), `${o.fmt(median(against), 2)}×`, milter ? `${signed[i]}/${count * rounds}` : '-'];
  });
  o.table(
    `Postfix end to end against rspamd: smtp-source, ${count} messages of 4.6 KB, 10 sessions, median of ${rounds} interleaved round${rounds > 1 ? 's' : ''}`,
    ['milter', 'delivered msg/s', 'vs none', 'signed'],
    rows,
  );
  if (signed.some((n, i) => i > 0 && n !== count * rounds)) throw new Error('a milter left messages unsigned in the Postfix run');
}
