/**
 * inkan's benchmark: every figure beside a real peer measured in the same run, and the
 * ratio. Not a test: it prints figures (machines differ; compare ratios).
 *   pnpm bench            full run (several minutes)
 *   pnpm bench --quick    smoke run, for CI: small counts, same code paths
 *   pnpm bench --rspamd   only the milters against rspamd (and Postfix end to end with them)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemoryKeyResolver, signMessage, verifyMessage } from '@inkan/dkim-core';
import { runTransaction } from '@inkan/milter-protocol';
import {
  cpuSeconds,
  findProgram,
  freePort,
  runProgram,
  startDnsmasq,
  startMilterd,
  statusKiB,
  tcpAccepting,
  tempDir,
  waitFor,
} from '@inkan/testbed';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { message as corpusMessage } from '../../../packages/dkim-core/bench/corpus.js';
import { concurrentRate, rate as measure } from '../../../packages/dkim-core/bench/measure.js';
import { hostileMemory } from './hostile-memory.js';
import { hostileCpu } from './hostile-cpu.js';
import { hostileMetrics } from './hostile-metrics.js';
import { postfixRun } from './postfix-run.js';
import { rspamdPeer } from './rspamd-peer.js';

const quick = process.argv.includes('--quick');
const rspamdOnly = process.argv.includes('--rspamd');
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..');
const STREAM_RSS = join(root, 'packages', 'dkim-core', 'bench', 'stream-rss.ts');
const minMs = quick ? 150 : 1200;
const dir = tempDir('inkan-bench-');
chmodSync(dir, 0o755); // Postfix's processes must reach the milters' unix sockets in it
const cleanups: (() => Promise<unknown> | unknown)[] = [];

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-';
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? `${fmt(a / b, 2)}×` : '-');

function table(title: string, head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  console.log(`\n## ${title}\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of rows) console.log(line(r));
}

const rate = (fn: () => unknown, maxIterations = 100_000) => measure(fn, minMs, maxIterations);

// ---------------------------------------------------------------------------------------
// Keys, shared by every section.
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const rsaPem = rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const rsaPkcs1 = rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
const edPem = ed.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const rsaRecord = `v=DKIM1; k=rsa; p=${rsa.publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`;
const edRecord = `v=DKIM1; k=ed25519; p=${ed.publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64')}`;
const resolver = new MemoryKeyResolver({ 'bench._domainkey.example.org': rsaRecord, 'edbench._domainkey.example.org': edRecord });
const mailauthResolver = async (name: string, type: string) => {
  if (type === 'TXT' && name === 'bench._domainkey.example.org') return [[rsaRecord]];
  if (type === 'TXT' && name === 'edbench._domainkey.example.org') return [[edRecord]];
  throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
};
writeFileSync(join(dir, 'rsa.private'), rsaPem, { mode: 0o600 });
writeFileSync(join(dir, 'rsa-pkcs1.private'), rsaPkcs1, { mode: 0o600 });

// ---------------------------------------------------------------------------------------
async function library(): Promise<void> {
  const data = Buffer.alloc(600, 'x');
  const keyObjectSign = await rate(() => sign('sha256', data, rsa.privateKey));
  const pemSign = await rate(() => sign('sha256', data, createPrivateKey(rsaPem)));
  const big = corpusMessage(10 * 1024 * 1024);
  const sha = (await rate(() => createHash('sha256').update(big).digest(), 200)) * (big.length / 1e6);
  table(
    'ceilings (node:crypto, this run)',
    ['operation', 'rate'],
    [
      ['RSA-2048 sign, parsed KeyObject', `${fmt(keyObjectSign)}/s`],
      ['RSA-2048 sign, PEM parsed per call', `${fmt(pemSign)}/s`],
      ['SHA-256', `${fmt(sha)} MB/s`],
    ],
  );

  const sizes: [string, number][] = quick
    ? [
        ['2 KiB', 2048],
        ['100 KiB', 100 * 1024],
      ]
    : [
        ['2 KiB', 2048],
        ['100 KiB', 100 * 1024],
        ['10 MiB', 10 * 1024 * 1024],
      ];
  const rows: string[][] = [];
  for (const [label, size] of sizes) {
    const msg = corpusMessage(size);
    for (const [alg, selector, key, pem] of [
      ['rsa-sha256', 'bench', rsa.privateKey, rsaPem],
      ['ed25519-sha256', 'edbench', ed.privateKey, edPem],
    ] as [string, string, KeyObject, string][]) {
      for (const c of ['relaxed/relaxed', 'simple/simple']) {
        if (alg === 'ed25519-sha256' && c === 'simple/simple') continue;
        const opts = { domain: 'example.org', selector, privateKey: key, canonicalization: c };
        const signed = Buffer.concat([Buffer.from(await signMessage(msg, opts)), msg]);
        if ((await verifyMessage(signed, { resolver }))[0]?.result !== 'pass') throw new Error('inkan bench message does not verify');
        const maOpts = { signatureData: [{ signingDomain: 'example.org', selector, privateKey: pem, canonicalization: c }] };
        const maSigned = Buffer.concat([Buffer.from((await dkimSign(msg, maOpts)).signatures), msg]);
        const maCheck = await dkimVerify(maSigned, { resolver: mailauthResolver });
        if (maCheck.results[0]?.status?.result !== 'pass')
          throw new Error(`mailauth bench message does not verify: ${JSON.stringify(maCheck.results[0]?.status)}`);
        const inkanSign = await rate(() => signMessage(msg, opts));
        const maSign = await rate(() => dkimSign(msg, maOpts));
        const inkanVerify = await rate(() => verifyMessage(signed, { resolver }));
        const maVerify = await rate(() => dkimVerify(maSigned, { resolver: mailauthResolver }));
        const mb = (r: number) => fmt((r * size) / 1e6, 1);
        rows.push([
          `${label} ${alg} ${c}`,
          `${fmt(inkanSign)} (${mb(inkanSign)} MB/s)`,
          `${fmt(maSign)} (${mb(maSign)} MB/s)`,
          ratio(inkanSign, maSign),
          `${fmt(inkanVerify)} (${mb(inkanVerify)} MB/s)`,
          `${fmt(maVerify)} (${mb(maVerify)} MB/s)`,
          ratio(inkanVerify, maVerify),
        ]);
      }
    }
  }
  table(
    'dkim-core vs mailauth 7.1.0 (msgs/s, one message at a time, same messages)',
    ['message', 'inkan sign', 'mailauth sign', 'ratio', 'inkan verify', 'mailauth verify', 'ratio'],
    rows,
  );
  // The targets, as medians of ratios measured side by side in three alternating rounds
  // (one figure minutes after the other would compare different moments of a noisy machine).
  // P1: 2 KiB RSA signing one message at a time against the synchronous ceiling (one core),
  // and with four messages in flight against node:crypto's asynchronous sign with four in
  // flight (both cores, as in a milter). P6: 2 KiB RSA relaxed verification against mailauth.
  const small = corpusMessage(2048);
  const p1opts = { domain: 'example.org', selector: 'bench', privateKey: rsa.privateKey, canonicalization: 'relaxed/relaxed' };
  const smallSigned = Buffer.concat([Buffer.from(await signMessage(small, p1opts)), small]);
  const maSmall = Buffer.concat([
    Buffer.from(
      (
        await dkimSign(small, {
          signatureData: [{ signingDomain: 'example.org', selector: 'bench', privateKey: rsaPem, canonicalization: 'relaxed/relaxed' }],
        })
      ).signatures,
    ),
    small,
  ]);
  const rounds: { one: number; sync: number; four: number; async4: number; verify: number; maVerify: number }[] = [];
  for (let round = 0; round < 3; round++) {
    rounds.push({
      sync: await rate(() => sign('sha256', data, rsa.privateKey)),
      one: await rate(() => signMessage(small, p1opts)),
      async4: await concurrentRate(() => new Promise((r) => sign('sha256', data, rsa.privateKey, r)), 4, minMs),
      four: await concurrentRate(() => signMessage(small, p1opts), 4, minMs),
      verify: await rate(() => verifyMessage(smallSigned, { resolver })),
      maVerify: await rate(() => dkimVerify(maSmall, { resolver: mailauthResolver })),
    });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const row = (how: string, a: (r: (typeof rounds)[number]) => number, b: (r: (typeof rounds)[number]) => number) => [
    how,
    rounds.map((r) => `${fmt(a(r))}/${fmt(b(r))}`).join('  '),
    `${fmt(median(rounds.map((r) => a(r) / b(r))), 2)}×`,
  ];
  table(
    'targets: 2 KiB RSA-2048 relaxed, three rounds side by side (inkan / reference, msgs/s)',
    ['what', 'rounds', 'median ratio'],
    [
      row(
        'P1 sign, one at a time / KeyObject sign (sync)',
        (r) => r.one,
        (r) => r.sync,
      ),
      row(
        'P1 sign, 4 in flight / async KeyObject sign, 4 in flight',
        (r) => r.four,
        (r) => r.async4,
      ),
      row(
        'P6 verify / mailauth verify',
        (r) => r.verify,
        (r) => r.maVerify,
      ),
    ],
  );

  // dkimpy and Mail::DKIM, RSA-2048 relaxed/relaxed, keys in memory.
  const peerRows: string[][] = [];
  const peerSizes = quick ? [sizes[0] as [string, number]] : sizes.slice(0, 2);
  for (const [label, size] of peerSizes) {
    const file = join(dir, `peer-${size}.eml`);
    writeFileSync(file, corpusMessage(size));
    const seconds = quick ? '0.3' : '1.5';
    const py = await runProgram(
      '/usr/bin/python3',
      [join(here, '..', 'peers', 'dkimpy-bench.py'), join(dir, 'rsa-pkcs1.private'), rsaRecord, file, 'relaxed/relaxed', seconds],
      { timeoutMs: 120_000 },
    );
    const pl = await runProgram(
      'perl',
      [join(here, '..', 'peers', 'maildkim-bench.pl'), join(dir, 'rsa-pkcs1.private'), rsaRecord, file, 'relaxed/relaxed', seconds],
      { timeoutMs: 120_000 },
    );
    const p = py.code === 0 ? (JSON.parse(py.stdout) as { sign: number; verify: number }) : { sign: Number.NaN, verify: Number.NaN };
    const m = pl.code === 0 ? (JSON.parse(pl.stdout) as { sign: number; verify: number }) : { sign: Number.NaN, verify: Number.NaN };
    if (py.code !== 0) console.log(`dkimpy failed: ${py.stderr.slice(0, 300)}`);
    if (pl.code !== 0) console.log(`Mail::DKIM failed: ${pl.stderr.slice(0, 300)}`);
    const msg = corpusMessage(size);
    const opts = { domain: 'example.org', selector: 'bench', privateKey: rsa.privateKey };
    const signed = Buffer.concat([Buffer.from(await signMessage(msg, opts)), msg]);
    const s = await rate(() => signMessage(msg, opts));
    const v = await rate(() => verifyMessage(signed, { resolver }));
    peerRows.push([`${label} rsa-sha256 relaxed`, fmt(s), fmt(p.sign), fmt(m.sign), fmt(v), fmt(p.verify), fmt(m.verify)]);
  }
  table(
    'dkim-core vs dkimpy and Mail::DKIM (msgs/s)',
    ['message', 'inkan sign', 'dkimpy sign', 'Mail::DKIM sign', 'inkan verify', 'dkimpy verify', 'Mail::DKIM verify'],
    peerRows,
  );
}

// ---------------------------------------------------------------------------------------
/** inkan-milterd (the testbed's starter) with this configuration, stopped at the end; stdout dropped, as it logs every message. */
async function startInkan(conf: string, ready: () => Promise<boolean>): Promise<ChildProcess> {
  const m = await startMilterd(['-x', conf], { output: 'quiet', ready });
  cleanups.push(() => m.stop());
  return m.child;
}

function startProcess(command: string, args: string[], ready: () => Promise<boolean>, what: string): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  cleanups.push(() => child.kill('SIGTERM'));
  return waitFor(ready, what, 200).then(
    () => child,
    (e: Error) => {
      child.kill('SIGKILL');
      throw new Error(`${e.message}: ${err}`);
    },
  );
}

interface Milter {
  name: string;
  tcp: string;
  unix: string;
  child: ChildProcess;
  /** The instance listening on the unix socket (a separate process). */
  unixPid: number;
  /** RSS right after start, before any mail (MiB). */
  idleMiB: number;
}

async function startMilters(): Promise<Milter[]> {
  const milters: Milter[] = [];
  const [inkanPort, odkPort] = [await freePort(), await freePort()];
  const inkanSock = join(dir, 'inkan.sock');
  const conf = join(dir, 'milterd.conf');
  // One inkan-milterd per socket kind keeps the measurements apart; same for OpenDKIM.
  writeFileSync(
    conf,
    `Socket inet:${inkanPort}@127.0.0.1\nDomain example.org\nSelector bench\nKeyFile ${join(dir, 'rsa.private')}\nAllowRoot yes\n`,
  );
  const unixConf = join(dir, 'milterd-unix.conf');
  writeFileSync(
    unixConf,
    `Socket local:${inkanSock}\nDomain example.org\nSelector bench\nKeyFile ${join(dir, 'rsa.private')}\nAllowRoot yes\nUMask 000\n`,
  );
  const inkan = await startInkan(conf, () => tcpAccepting(inkanPort));
  const inkanUnix = await startInkan(unixConf, async () => (await runProgram('test', ['-S', inkanSock])).code === 0);
  await new Promise((r) => setTimeout(r, 500));
  milters.push({
    name: 'inkan-milterd',
    tcp: `inet:${inkanPort}@127.0.0.1`,
    unix: `unix:${inkanSock}`,
    child: inkan,
    unixPid: inkanUnix.pid as number,
    idleMiB: statusKiB(inkan.pid as number, 'VmRSS') / 1024,
  });
  const opendkim = findProgram('opendkim');
  if (opendkim) {
    const odkSock = join(dir, 'opendkim.sock');
    const base = `Mode s\nDomain example.org\nSelector bench\nKeyFile ${join(dir, 'rsa.private')}\nSyslog no\nRequireSafeKeys no\nBackground no\nUserID root\nUMask 000\n`;
    writeFileSync(join(dir, 'opendkim-tcp.conf'), `${base}Socket inet:${odkPort}@127.0.0.1\n`);
    writeFileSync(join(dir, 'opendkim-unix.conf'), `${base}Socket local:${odkSock}\n`);
    const odk = await startProcess(opendkim, ['-f', '-x', join(dir, 'opendkim-tcp.conf')], () => tcpAccepting(odkPort), 'opendkim');
    const odkUnix = await startProcess(
      opendkim,
      ['-f', '-x', join(dir, 'opendkim-unix.conf')],
      async () => (await runProgram('test', ['-S', odkSock])).code === 0,
      'opendkim (unix)',
    );
    milters.push({
      name: 'OpenDKIM',
      tcp: `inet:${odkPort}@127.0.0.1`,
      unix: `unix:${odkSock}`,
      child: odk,
      unixPid: odkUnix.pid as number,
      idleMiB: statusKiB(odk.pid as number, 'VmRSS') / 1024,
    });
  }
  return milters;
}

const MILTER_LUA = join(here, '..', 'peers', 'milter-bench.lua');

/**
 * Transactions per second: `clients` miltertest processes (the MTA simulator from OpenDKIM's
 * tools, a C client with a Lua script), each running full signing transactions one after
 * another on a new connection each (as Postfix opens one per SMTP session). The same client
 * and script drive both milters. Without miltertest, inkan's own MilterClient does it.
 */
async function milterRate(
  spec: string,
  clients: number,
  total: number,
  file: string,
  driver: 'miltertest' | 'MilterClient',
): Promise<number> {
  const each = Math.ceil(total / clients);
  const miltertest = driver === 'miltertest' ? findProgram('miltertest') : undefined;
  const start = performance.now();
  if (miltertest) {
    const runs = await Promise.all(
      Array.from({ length: clients }, () =>
        runProgram(miltertest, ['-D', `sock=${spec}`, '-D', `file=${file}`, '-D', `count=${each}`, '-s', MILTER_LUA], {
          timeoutMs: 600_000,
        }),
      ),
    );
    const bad = runs.find((r) => r.code !== 0);
    if (bad) throw new Error(`miltertest against ${spec} failed: ${bad.stdout.slice(-300)} ${bad.stderr.slice(-300)}`);
  } else {
    const tx = { sender: 'joe@example.org', recipients: ['suzie@example.net'], message: readFileSync(file), macros: { M: { i: 'BENCH' } } };
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let i = 0; i < each; i++) {
          const r = await runTransaction(spec, tx, { timeoutMs: 30_000 });
          if (!r.endOfMessage?.modifications.some((m) => m.type === 'insertHeader' || m.type === 'addHeader'))
            throw new Error(`${spec} did not sign`);
        }
      }),
    );
  }
  return (each * clients) / ((performance.now() - start) / 1000);
}

async function milters(list: Milter[]): Promise<void> {
  const file = join(dir, 'milter-4600.eml');
  writeFileSync(file, corpusMessage(4600));
  const total = quick ? 60 : 1000;
  const miltertest = findProgram('miltertest') !== undefined;
  // miltertest leaves Nagle's algorithm on, as Postfix does, so over TCP it waits for each
  // milter's delayed ACKs (about 11 transactions/s, whatever the milter): TCP is measured
  // with inkan's MilterClient (TCP_NODELAY) too, which shows the milters' own writes.
  const runs: { socket: 'unix' | 'tcp'; clients: number; driver: 'miltertest' | 'MilterClient'; total: number }[] = [
    ...[1, 10].map((clients) => ({
      socket: 'unix' as const,
      clients,
      driver: miltertest ? ('miltertest' as const) : ('MilterClient' as const),
      total,
    })),
    ...[1, 10].map((clients) => ({ socket: 'tcp' as const, clients, driver: 'MilterClient' as const, total })),
    ...(miltertest
      ? [1, 10].map((clients) => ({ socket: 'tcp' as const, clients, driver: 'miltertest' as const, total: quick ? 20 : clients * 20 }))
      : []),
  ];
  // Warm up both daemons (JIT, caches) before anything is timed.
  for (const m of list) {
    await milterRate(m.unix, 10, quick ? 20 : 300, file, runs[0]?.driver ?? 'MilterClient');
    await milterRate(m.tcp, 10, quick ? 20 : 300, file, 'MilterClient');
  }
  const rows: string[][] = [];
  for (const run of runs) {
    const rates: number[] = [];
    const cpu: number[] = [];
    for (const m of list) {
      const pid = run.socket === 'unix' ? m.unixPid : (m.child.pid as number);
      const before = cpuSeconds(pid);
      rates.push(await milterRate(run.socket === 'unix' ? m.unix : m.tcp, run.clients, run.total, file, run.driver));
      cpu.push(((cpuSeconds(pid) - before) * 1000) / run.total);
    }
    rows.push([
      `${run.socket}, ${run.clients} client${run.clients > 1 ? 's' : ''}, ${run.driver} (${run.total})`,
      ...rates.map((r, i) => `${fmt(r)} (${fmt(cpu[i] as number, 2)} ms CPU)`),
      list.length > 1 ? ratio(rates[0] as number, rates[1] as number) : '-',
    ]);
  }
  table(
    'milter signing throughput, 4.6 KB messages, the same client for both (transactions in brackets; msgs/s and milter CPU per message)',
    ['socket, clients, driver', ...list.map((m) => m.name), 'ratio'],
    rows,
  );
}

async function endToEnd(list: Milter[]): Promise<void> {
  const smtpSource = findProgram('smtp-source');
  if (!smtpSource) {
    console.log('\n(smtp-source not found: no Postfix end-to-end figures)');
    return;
  }
  const count = quick ? 100 : 2000;
  const rows: string[][] = [];
  let baseline = 0;
  const setups: [string, string | undefined][] = [['no milter', undefined]];
  for (const m of list)
    setups.push([`${m.name}, TCP`, m.tcp.replace(/^inet:(\d+)@(.*)$/, 'inet:$2:$1')], [`${m.name}, unix socket`, m.unix]);
  for (const [name, milter] of setups) {
    const run = await postfixRun(smtpSource, milter, count);
    if (!milter) baseline = run.deliveredPerSecond;
    rows.push([
      name,
      fmt(run.acceptedPerSecond),
      fmt(run.deliveredPerSecond),
      milter ? ratio(run.deliveredPerSecond, baseline) : '1.00×',
      `${run.signed}/${count}`,
    ]);
  }
  table(
    `Postfix end to end: smtp-source, ${count} messages of 4.6 KB, 10 sessions (relaxed, RSA-2048)`,
    ['milter', 'accepted msg/s', 'delivered msg/s', 'vs none', 'signed'],
    rows,
  );
}

async function memory(list: Milter[]): Promise<void> {
  const mib = quick ? 10 : 100;
  const out = await runProgram(process.execPath, ['--import', 'tsx', STREAM_RSS, String(mib)], {
    timeoutMs: 600_000,
    cwd: join(root, 'packages', 'dkim-core'),
  });
  const lib = JSON.parse(out.stdout) as { result: string; peakRssMiB: number; baselineRssMiB: number };
  const inkan = list[0] as Milter;
  const busy = statusKiB(inkan.child.pid as number, 'VmRSS') / 1024;
  const busyPeak = statusKiB(inkan.child.pid as number, 'VmHWM') / 1024;
  // A fresh daemon for the big message, so that its peak is the message's and not the
  // throughput runs'. It signs for clients in InternalHosts (127.0.0.2 here) and verifies
  // the rest, with the key served by dnsmasq.
  const dns = await startDnsmasq({ 'bench._domainkey.example.org': rsaRecord });
  cleanups.push(() => dns.stop());
  const sock = join(dir, 'inkan-mem.sock');
  const conf = join(dir, 'milterd-mem.conf');
  writeFileSync(
    conf,
    `Socket local:${sock}\nMode sv\nDomain example.org\nSelector bench\nKeyFile ${join(dir, 'rsa.private')}\nInternalHosts 127.0.0.2\nNameservers ${dns.server}\nOn-DNSError accept\nAllowRoot yes\nUMask 000\n`,
  );
  const fresh = await startInkan(conf, async () => (await runProgram('test', ['-S', sock])).code === 0);
  const pid = fresh.pid as number;
  await new Promise((r) => setTimeout(r, 500));
  const idle = statusKiB(pid, 'VmRSS') / 1024;
  const body = corpusMessage(mib * 1024 * 1024);
  const signedTx = await runTransaction(
    `unix:${sock}`,
    { client: { address: '127.0.0.2' }, sender: 'joe@example.org', recipients: ['x@example.net'], message: body },
    { timeoutMs: 600_000 },
  );
  const signature = signedTx.endOfMessage?.modifications.find((m) => m.type === 'insertHeader' || m.type === 'addHeader');
  const signPeak = statusKiB(pid, 'VmHWM') / 1024;
  let verdict = 'not signed';
  if (signature && 'value' in signature && 'name' in signature) {
    const signedMessage = Buffer.concat([
      Buffer.from(`${signature.name}:${signature.value.toString('latin1').replace(/\r?\n/g, '\r\n')}\r\n`, 'latin1'),
      body,
    ]);
    const verified = await runTransaction(
      `unix:${sock}`,
      { client: { address: '127.0.0.1' }, sender: 'joe@example.org', recipients: ['x@example.net'], message: signedMessage },
      { timeoutMs: 600_000 },
    );
    const ar = verified.endOfMessage?.modifications.find((m) => 'name' in m && m.name === 'Authentication-Results');
    verdict = ar && 'value' in ar ? (/dkim=(\w+)/.exec(ar.value.toString('latin1'))?.[1] ?? 'no dkim result') : 'no Authentication-Results';
  }
  const verifyPeak = statusKiB(pid, 'VmHWM') / 1024;
  fresh.kill('SIGTERM');
  table(
    `memory (${mib} MiB message, RSA-2048 relaxed)`,
    ['what', 'peak RSS MiB', 'note'],
    [
      [
        'dkim-core sign + verify, streamed',
        fmt(lib.peakRssMiB, 1),
        `process baseline ${fmt(lib.baselineRssMiB, 1)} MiB; result ${lib.result}`,
      ],
      ['inkan-milterd idle', fmt(idle, 1), 'a fresh daemon, before any mail'],
      [`inkan-milterd signing the ${mib} MiB message`, fmt(signPeak, 1), signature ? 'signed' : 'NOT signed'],
      [`inkan-milterd verifying it`, fmt(verifyPeak, 1), `dkim=${verdict}`],
      ['inkan-milterd after the throughput runs', `${fmt(busy, 1)} (peak ${fmt(busyPeak, 1)})`, '1,000s of transactions, 10 clients'],
    ],
  );
}

try {
  console.log(`# inkan benchmark${quick ? ' (quick)' : ''}, ${new Date().toISOString()}`);
  if (!rspamdOnly) await library();
  const list = await startMilters();
  const inkan = {
    tcp: list[0]?.tcp as string,
    unix: list[0]?.unix as string,
    tcpPid: list[0]?.child.pid as number,
    unixPid: list[0]?.unixPid as number,
  };
  const peerOptions = { quick, dir, keyFile: join(dir, 'rsa.private'), keyRecord: rsaRecord, inkan, milterRate, cpuSeconds, table, fmt };
  if (!rspamdOnly) await milters(list);
  if (!rspamdOnly) await endToEnd(list);
  await rspamdPeer(peerOptions);
  if (!rspamdOnly) await memory(list);
  if (!rspamdOnly) await hostileMemory({ quick, dir, keyFile: join(dir, 'rsa.private'), table });
  if (!rspamdOnly) await hostileCpu({ quick, dir, table, fmt });
  if (!rspamdOnly) await hostileMetrics({ quick, dir, keyFile: join(dir, 'rsa.private'), table, fmt });
} finally {
  for (const c of cleanups.reverse()) await c();
}
