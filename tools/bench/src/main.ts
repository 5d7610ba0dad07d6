/**
 * inkan's benchmark: every figure beside a real peer measured in the same run, and the
 * ratio. Not a test: it prints figures (machines differ; compare ratios).
 *   pnpm bench            full run (several minutes)
 *   pnpm bench --quick    smoke run, for CI: small counts, same code paths
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemoryKeyResolver, signMessage, verifyMessage } from '@inkan/dkim-core';
import { MilterClient, runTransaction } from '@inkan/milter-protocol';
import { findProgram, freePort, runProgram, startPostfix, tempDir, waitFor } from '@inkan/testbed';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { message as corpusMessage } from '../../../packages/dkim-core/bench/corpus.js';
import { rate as measure } from '../../../packages/dkim-core/bench/measure.js';

const quick = process.argv.includes('--quick');
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..');
const MILTERD = join(root, 'apps', 'milterd', 'bin', 'inkan-milterd.js');
const STREAM_RSS = join(root, 'packages', 'dkim-core', 'bench', 'stream-rss.ts');
const minMs = quick ? 150 : 1200;
const dir = tempDir('inkan-bench-');
const cleanups: (() => Promise<unknown> | unknown)[] = [];

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');
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
  table('ceilings (node:crypto, this run)', ['operation', 'rate'], [
    ['RSA-2048 sign, parsed KeyObject', `${fmt(keyObjectSign)}/s`],
    ['RSA-2048 sign, PEM parsed per call', `${fmt(pemSign)}/s`],
    ['SHA-256', `${fmt(sha)} MB/s`],
  ]);

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
        if (maCheck.results[0]?.status?.result !== 'pass') throw new Error(`mailauth bench message does not verify: ${JSON.stringify(maCheck.results[0]?.status)}`);
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
  table('dkim-core vs mailauth 7.1.0 (msgs/s, one message at a time, same messages)', ['message', 'inkan sign', 'mailauth sign', 'ratio', 'inkan verify', 'mailauth verify', 'ratio'], rows);
  const first = rows[0];
  console.log(`P1 check: inkan 2 KiB RSA sign / KeyObject sign/s = ${ratio(Number((first?.[1] ?? '0').split(' ')[0]?.replace(/,/g, '')), keyObjectSign)}`);

  // dkimpy and Mail::DKIM, RSA-2048 relaxed/relaxed, keys in memory.
  const peerRows: string[][] = [];
  const peerSizes = quick ? [sizes[0] as [string, number]] : sizes.slice(0, 2);
  for (const [label, size] of peerSizes) {
    const file = join(dir, `peer-${size}.eml`);
    writeFileSync(file, corpusMessage(size));
    const seconds = quick ? '0.3' : '1.5';
    const py = await runProgram('/usr/bin/python3', [join(here, '..', 'peers', 'dkimpy-bench.py'), join(dir, 'rsa-pkcs1.private'), rsaRecord, file, 'relaxed/relaxed', seconds], { timeoutMs: 120_000 });
    const pl = await runProgram('perl', [join(here, '..', 'peers', 'maildkim-bench.pl'), join(dir, 'rsa-pkcs1.private'), rsaRecord, file, 'relaxed/relaxed', seconds], { timeoutMs: 120_000 });
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
  table('dkim-core vs dkimpy and Mail::DKIM (msgs/s)', ['message', 'inkan sign', 'dkimpy sign', 'Mail::DKIM sign', 'inkan verify', 'dkimpy verify', 'Mail::DKIM verify'], peerRows);
}

// ---------------------------------------------------------------------------------------
async function accepting(host: string, port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = connect(port, host, () => {
      s.destroy();
      r(true);
    });
    s.on('error', () => r(false));
  });
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

function rssKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return Number((line ?? '').replace(/\D+/g, ''));
}

interface Milter {
  name: string;
  tcp: string;
  unix: string;
  child: ChildProcess;
  /** RSS right after start, before any mail (MiB). */
  idleMiB: number;
}

async function startMilters(): Promise<Milter[]> {
  const milters: Milter[] = [];
  const [inkanPort, odkPort] = [await freePort(), await freePort()];
  const inkanSock = join(dir, 'inkan.sock');
  const conf = join(dir, 'milterd.conf');
  // One inkan-milterd per socket kind keeps the measurements apart; same for OpenDKIM.
  writeFileSync(conf, `Socket inet:${inkanPort}@127.0.0.1\nDomain example.org\nSelector bench\nKeyFile ${join(dir, 'rsa.private')}\nAllowRoot yes\n`);
  const unixConf = join(dir, 'milterd-unix.conf');
  writeFileSync(unixConf, `Socket local:${inkanSock}\nDomain example.org\nSelector bench\nKeyFile ${join(dir, 'rsa.private')}\nAllowRoot yes\nUMask 000\n`);
  const inkan = await startProcess(process.execPath, [MILTERD, '-x', conf], () => accepting('127.0.0.1', inkanPort), 'inkan-milterd');
  await startProcess(process.execPath, [MILTERD, '-x', unixConf], async () => (await runProgram('test', ['-S', inkanSock])).code === 0, 'inkan-milterd (unix)');
  await new Promise((r) => setTimeout(r, 500));
  milters.push({ name: 'inkan-milterd', tcp: `inet:${inkanPort}@127.0.0.1`, unix: `unix:${inkanSock}`, child: inkan, idleMiB: rssKiB(inkan.pid as number, 'VmRSS') / 1024 });
  const opendkim = findProgram('opendkim');
  if (opendkim) {
    const odkSock = join(dir, 'opendkim.sock');
    const base = `Mode s\nDomain example.org\nSelector bench\nKeyFile ${join(dir, 'rsa.private')}\nSyslog no\nRequireSafeKeys no\nBackground no\nUserID root\nUMask 000\n`;
    writeFileSync(join(dir, 'opendkim-tcp.conf'), `${base}Socket inet:${odkPort}@127.0.0.1\n`);
    writeFileSync(join(dir, 'opendkim-unix.conf'), `${base}Socket local:${odkSock}\n`);
    const odk = await startProcess(opendkim, ['-f', '-x', join(dir, 'opendkim-tcp.conf')], () => accepting('127.0.0.1', odkPort), 'opendkim');
    await startProcess(opendkim, ['-f', '-x', join(dir, 'opendkim-unix.conf')], async () => (await runProgram('test', ['-S', odkSock])).code === 0, 'opendkim (unix)');
    milters.push({ name: 'OpenDKIM', tcp: `inet:${odkPort}@127.0.0.1`, unix: `unix:${odkSock}`, child: odk, idleMiB: rssKiB(odk.pid as number, 'VmRSS') / 1024 });
  }
  return milters;
}

/**
 * Transactions per second: `clients` workers, each running full transactions one after
 * another, a new connection each (as Postfix does per SMTP session); signing, as the
 * client is 127.0.0.1.
 */
async function milterRate(spec: string, clients: number, total: number, message: Buffer): Promise<number> {
  const tx = { sender: 'joe@example.org', recipients: ['suzie@example.net'], message, macros: { M: { i: 'BENCH' } } };
  const check = await runTransaction(spec, tx, { timeoutMs: 30_000 });
  if (!check.endOfMessage?.modifications.some((m) => m.type === 'insertHeader' || m.type === 'addHeader')) throw new Error(`${spec} did not sign`);
  const each = Math.ceil(total / clients);
  const start = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = 0; i < each; i++) await runTransaction(spec, tx, { timeoutMs: 30_000 });
    }),
  );
  return (each * clients) / ((performance.now() - start) / 1000);
}

async function milters(list: Milter[]): Promise<void> {
  const message = corpusMessage(4600);
  const total = quick ? 60 : 1000;
  const rows: string[][] = [];
  for (const socket of ['unix', 'tcp'] as const) {
    for (const clients of [1, 10]) {
      const rates = [];
      for (const m of list) rates.push(await milterRate(socket === 'unix' ? m.unix : m.tcp, clients, total, message));
      rows.push([`${socket}, ${clients} client${clients > 1 ? 's' : ''}`, ...rates.map((r) => fmt(r)), list.length > 1 ? ratio(rates[0] as number, rates[1] as number) : '-']);
    }
  }
  table(`milter signing throughput, 4.6 KB messages, same client for both (${total} transactions, msgs/s)`, ['socket', ...list.map((m) => m.name), 'ratio'], rows);
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
  for (const [name, milter] of [['no milter', undefined], ...list.map((m) => [m.name, m.tcp.replace(/^inet:(\d+)@(.*)$/, 'inet:$2:$1')])] as [string, string | undefined][]) {
    const postfix = await startPostfix(milter ? { smtpdMilters: milter, mainCf: { non_smtpd_milters: '' } } : {});
    try {
      const start = performance.now();
      const r = await runProgram(smtpSource, ['-m', String(count), '-s', '10', '-l', '4600', '-f', 'joe@example.org', '-t', 'suzie@example.net', `127.0.0.1:${postfix.smtpPort}`], { timeoutMs: 600_000 });
      if (r.code !== 0) throw new Error(`smtp-source: ${r.stderr}`);
      const accepted = performance.now();
      await postfix.waitForDelivered(count, 12_000);
      const delivered = performance.now();
      const perSecond = count / ((delivered - start) / 1000);
      if (!milter) baseline = perSecond;
      const signed = postfix.sink.messages.filter((m) => /^DKIM-Signature:/m.test(m.data.toString('latin1'))).length;
      rows.push([name, fmt(count / ((accepted - start) / 1000)), fmt(perSecond), milter ? ratio(perSecond, baseline) : '1.00×', `${signed}/${count}`]);
    } finally {
      await postfix.stop();
    }
  }
  table(`Postfix end to end: smtp-source, ${count} messages of 4.6 KB, 10 sessions (relaxed, RSA-2048)`, ['milter', 'accepted msg/s', 'delivered msg/s', 'vs none', 'signed'], rows);
}

async function memory(list: Milter[]): Promise<void> {
  const mib = quick ? 10 : 100;
  const out = await runProgram(process.execPath, ['--import', 'tsx', STREAM_RSS, String(mib)], { timeoutMs: 600_000, cwd: join(root, 'packages', 'dkim-core') });
  const lib = JSON.parse(out.stdout) as { result: string; peakRssMiB: number; baselineRssMiB: number };
  const inkan = list[0] as Milter;
  const pid = inkan.child.pid as number;
  const busy = rssKiB(pid, 'VmRSS') / 1024;
  const client = await MilterClient.open(inkan.tcp);
  const body = corpusMessage(mib * 1024 * 1024);
  await runTransaction(client, { sender: 'joe@example.org', recipients: ['x@example.net'], message: body });
  await client.quit();
  const peak = rssKiB(pid, 'VmHWM') / 1024;
  table(`memory (${mib} MiB message, RSA-2048 relaxed)`, ['what', 'peak RSS MiB', 'note'], [
    ['dkim-core sign + verify, streamed', fmt(lib.peakRssMiB, 1), `process baseline ${fmt(lib.baselineRssMiB, 1)} MiB; result ${lib.result}`],
    ['inkan-milterd idle', fmt(inkan.idleMiB, 1), 'right after start'],
    ['inkan-milterd after the throughput runs', fmt(busy, 1), 'before this message'],
    ['inkan-milterd signing it', fmt(peak, 1), 'VmHWM of the daemon since start'],
  ]);
}

try {
  console.log(`# inkan benchmark${quick ? ' (quick)' : ''}, ${new Date().toISOString()}`);
  await library();
  const list = await startMilters();
  await milters(list);
  await endToEnd(list);
  await memory(list);
} finally {
  for (const c of cleanups.reverse()) await c();
}
