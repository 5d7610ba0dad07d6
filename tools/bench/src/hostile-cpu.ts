/**
 * Hostile CPU (issue #16 item 4): what one message with 10 DKIM and 10 DomainKeys signatures
 * costs a verifier when their key is made to be slow (a 3072-bit modulus with a 3071-bit
 * public exponent: every RSA check then costs about what a private-key operation does) or
 * merely large (4096 bits, e = 65537), against a normal message; and what four connections
 * sending such mail do to a normal sender's throughput through a real inkan-milterd.
 *
 * "b5f5af8 did": the verifier before the caps checked all 20 signatures with the key, one
 * after another without letting the event loop run; that work is measured here with
 * node:crypto (the same RSA operations on the same key), beside the library as it is now.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { join } from 'node:path';
import { MemoryKeyResolver, signMessage } from '@inkan/dkim-core';
import { runTransaction } from '@inkan/milter-protocol';
import { cpuSeconds, type MilterdProcess, startDnsmasq, startMilterdOnPort } from '@inkan/testbed';
import { verifyDkimAndDomainKeys } from '../../../packages/domainkeys-verify/dist/index.js';
import { rsaPublicKeyB64, rsaPublicKeyWithExponentB64, withManySignatures } from '../../../packages/dkim-core/bench/hostile.js';
import { rate } from '../../../packages/dkim-core/bench/measure.js';

export interface HostileCpuOptions {
  quick: boolean;
  /** A scratch directory (configuration files). */
  dir: string;
  table: (title: string, head: string[], rows: string[][]) => void;
  fmt: (n: number, digits?: number) => string;
}

const DOMAIN = 'example.org';

function baseMessage(n: number): Buffer {
  return Buffer.from(
    `From: Joe <joe@${DOMAIN}>\r\nTo: Suzie <suzie@example.net>\r\nSubject: hostile cpu ${n}\r\nMessage-ID: <cpu.${n}@${DOMAIN}>\r\n\r\nA short message, ${n}.\r\n`,
    'latin1',
  );
}

/** Random b= below any modulus of `bytes` octets (so that RSA really runs). */
function randomSignature(bytes: number): Buffer {
  const b = randomBytes(bytes);
  b[0] = (b[0] as number) & 0x7f;
  return b;
}

/** The RSA work b5f5af8 did for a message with 10 DKIM + 10 DomainKeys signatures under this key: ms per message. */
async function uncappedRsaMs(publicKeyB64: string, bytes: number, minMs: number): Promise<number> {
  const key = createPublicKey({ key: Buffer.from(publicKeyB64, 'base64'), format: 'der', type: 'spki' });
  const data = randomBytes(600);
  const sig = randomSignature(bytes);
  const perSecond = await rate(
    () => {
      for (let i = 0; i < 10; i++) verify('sha256', data, key, sig);
      for (let i = 0; i < 10; i++) verify('sha1', data, key, sig);
    },
    minMs,
    1000,
  );
  return 1000 / perSecond;
}

/**
 * The longest the event loop went without a turn while `work` ran, in CPU ms of this
 * process (not wall time: on a busy machine the process is also descheduled, which no
 * code of ours can help).
 */
async function longestBlock(work: () => Promise<unknown>): Promise<number> {
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  let last = cpu();
  let longest = 0;
  let running = true;
  const tick = () => {
    const now = cpu();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  await work();
  running = false;
  await new Promise((r) => setImmediate(r));
  return longest;
}

async function library(o: HostileCpuOptions): Promise<void> {
  const minMs = o.quick ? 100 : 1200;
  const good = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const hostileP = rsaPublicKeyB64(3072, 3071);
  const bigP = rsaPublicKeyWithExponentB64(4096, 65537n);
  const resolver = new MemoryKeyResolver({
    [`good._domainkey.${DOMAIN}`]: `v=DKIM1; k=rsa; p=${good.publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`,
    [`hostile._domainkey.${DOMAIN}`]: `v=DKIM1; k=rsa; p=${hostileP}`,
    [`big._domainkey.${DOMAIN}`]: `v=DKIM1; k=rsa; p=${bigP}`,
  });
  const base = baseMessage(0);
  const normal = Buffer.concat([
    Buffer.from(await signMessage(base, { domain: DOMAIN, selector: 'good', privateKey: good.privateKey }), 'latin1'),
    base,
  ]);
  const hostile = withManySignatures(base, { domain: DOMAIN, selector: 'hostile', dkim: 10, domainKeys: 10, signatureBytes: 384 });
  const big = withManySignatures(base, { domain: DOMAIN, selector: 'big', dkim: 10, domainKeys: 10, signatureBytes: 512 });

  const cases: { name: string; message: Buffer; p?: string; bytes?: number; expect: string }[] = [
    { name: 'normal: 1 DKIM signature, RSA-2048', message: normal, expect: 'pass' },
    { name: '10 DKIM + 10 DK, 3072-bit key, 3071-bit exponent', message: hostile, p: hostileP, bytes: 384, expect: 'policy' },
    { name: '10 DKIM + 10 DK, 4096-bit key, e = 65537', message: big, p: bigP, bytes: 512, expect: 'fail' },
  ];
  // Warm up (JIT, import cache) before anything is timed.
  for (let i = 0; i < (o.quick ? 20 : 200); i++) for (const c of cases) await verifyDkimAndDomainKeys(c.message, { resolver });
  const rows: string[][] = [];
  let normalMs = 0;
  for (const c of cases) {
    const check = await verifyDkimAndDomainKeys(c.message, { resolver });
    const all = [...check.dkim, ...check.domainkeys];
    if (all[0]?.result !== c.expect)
      throw new Error(`hostile-cpu: ${c.name} gave ${all[0]?.result} (${all[0]?.reason}), expected ${c.expect}`);
    const checked = all.filter((r) => r.result === 'pass' || r.result === 'fail').length;
    const ms = 1000 / (await rate(() => verifyDkimAndDomainKeys(c.message, { resolver }), minMs, 20_000));
    if (!c.p) normalMs = ms;
    const block = await longestBlock(async () => {
      for (let i = 0; i < (o.quick ? 5 : 30); i++) await verifyDkimAndDomainKeys(c.message, { resolver });
    });
    const before = c.p && c.bytes ? await uncappedRsaMs(c.p, c.bytes, minMs) : undefined;
    rows.push([
      c.name,
      `${o.fmt(ms, 2)} (${o.fmt(ms / normalMs, 1)}×)`,
      String(checked),
      o.fmt(block, 2),
      before === undefined ? '-' : `${o.fmt(before, 2)} (${o.fmt(before / normalMs, 0)}×)`,
      before === undefined ? '-' : '20',
    ]);
  }
  o.table(
    'hostile CPU, library: one message verified (DKIM + DomainKeys), ms per message (× the normal message)',
    [
      'message',
      'inkan now, ms',
      'RSA checks now',
      'longest loop turn, CPU ms (GC pauses too)',
      'RSA work b5f5af8 did in one turn, ms',
      'RSA checks then',
    ],
    rows,
  );
}

interface SenderStats {
  done: number;
  latencies: number[];
}

/** Send `message` over and over on one connection at a time until `until` (ms, performance.now()). */
async function sender(spec: string, message: Buffer, until: number, stats: SenderStats): Promise<void> {
  while (performance.now() < until) {
    const started = performance.now();
    const r = await runTransaction(
      spec,
      { sender: `joe@${DOMAIN}`, recipients: ['suzie@example.net'], message, client: { address: '192.0.2.7' } },
      { timeoutMs: 60_000 },
    );
    if (!r.endOfMessage) throw new Error(`hostile-cpu: transaction ended at ${r.outcome.stage}`);
    stats.latencies.push(performance.now() - started);
    stats.done++;
  }
}

const median = (xs: number[]) => (xs.length === 0 ? Number.NaN : ([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number));

async function milterd(o: HostileCpuOptions): Promise<void> {
  const good = generateKeyPairSync('rsa', { modulusLength: 2048 });
  // dnsmasq takes configuration lines of about 1,000 characters: a 3072-bit modulus with a
  // 2048-bit exponent is the most hostile key that fits (the library rows use 3071 bits).
  const dns = await startDnsmasq({
    [`good._domainkey.${DOMAIN}`]: `v=DKIM1; k=rsa; p=${good.publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`,
    [`hostile._domainkey.${DOMAIN}`]: `p=${rsaPublicKeyB64(3072, 2048)}`,
    [`big._domainkey.${DOMAIN}`]: `p=${rsaPublicKeyWithExponentB64(4096, 65537n)}`,
  });
  let child: MilterdProcess | undefined;
  try {
    const lines = ['Mode v', 'AuthservID bench.example', `Nameservers 127.0.0.1@${dns.port}`, 'On-DNSError accept', 'AllowRoot yes'];
    const { milterd: proc, socket: spec } = await startMilterdOnPort(join(o.dir, 'milterd-hostile-cpu.conf'), lines, { output: 'quiet' });
    child = proc;
    const base = baseMessage(1);
    const normal = Buffer.concat([
      Buffer.from(await signMessage(base, { domain: DOMAIN, selector: 'good', privateKey: good.privateKey }), 'latin1'),
      base,
    ]);
    const attacks: [string, Buffer][] = [
      [
        '3072-bit key, 2048-bit exponent',
        withManySignatures(base, { domain: DOMAIN, selector: 'hostile', dkim: 10, domainKeys: 10, signatureBytes: 384 }),
      ],
      [
        '4096-bit key, e = 65537',
        withManySignatures(base, { domain: DOMAIN, selector: 'big', dkim: 10, domainKeys: 10, signatureBytes: 512 }),
      ],
    ];
    // Check what the milter says about each, once (and warm it up).
    const arOf = async (m: Buffer) => {
      const r = await runTransaction(
        spec,
        { sender: `joe@${DOMAIN}`, recipients: ['suzie@example.net'], message: m },
        { timeoutMs: 60_000 },
      );
      const ar = r.endOfMessage?.modifications.find((x) => 'name' in x && x.name === 'Authentication-Results');
      return ar && 'value' in ar ? ar.value.toString('latin1') : '';
    };
    if (!/dkim=pass/.test(await arOf(normal))) throw new Error('hostile-cpu: the normal message does not pass through inkan-milterd');
    for (const [name, m] of attacks) {
      const ar = await arOf(m);
      const policy = (ar.match(/=policy/g) ?? []).length;
      if (!/not verified: more than 10 signatures/.test(ar))
        throw new Error(`hostile-cpu: ${name}: no signature cap in ${ar.slice(0, 200)}`);
      if (name.startsWith('3072') && policy !== 20) throw new Error(`hostile-cpu: ${name}: ${policy} policy results, expected 20`);
    }
    for (let i = 0; i < (o.quick ? 5 : 50); i++) await arOf(normal);

    const seconds = o.quick ? 1 : 5;
    const rows: string[][] = [];
    // The attack messages carry 20 large fields more than a normal one, and each header field
    // is a milter round trip: the same 20 fields as plain X- fields separate that cost from
    // the signatures'.
    const padding = Array.from({ length: 20 }, () => `X-Padding: ${randomBytes(384).toString('base64')}\r\n`).join('');
    const padded = Buffer.concat([Buffer.from(padding, 'latin1'), normal]);
    const phases: [string, Buffer | undefined][] = [
      ['no other connections', undefined],
      ['4 more normal senders (control)', normal],
      ['4 senders: normal + 20 X-Padding fields (control)', padded],
      ...attacks.map(([name, m]): [string, Buffer] => [`4 attackers: 10 DKIM + 10 DK, ${name}`, m]),
    ];
    for (const [name, attack] of phases) {
      const until = performance.now() + seconds * 1000;
      const normalStats: SenderStats = { done: 0, latencies: [] };
      const attackStats: SenderStats = { done: 0, latencies: [] };
      const started = performance.now();
      const cpuBefore = cpuSeconds(proc.pid as number);
      await Promise.all([
        sender(spec, normal, until, normalStats),
        ...(attack ? Array.from({ length: 4 }, () => sender(spec, attack, until, attackStats)) : []),
      ]);
      const elapsed = (performance.now() - started) / 1000;
      const cpuMs = (cpuSeconds(proc.pid as number) - cpuBefore) * 1000;
      const all = normalStats.done + attackStats.done;
      rows.push([
        name,
        o.fmt(normalStats.done / elapsed),
        `${o.fmt(median(normalStats.latencies), 1)} / ${o.fmt(Math.max(...normalStats.latencies), 1)}`,
        attack ? o.fmt(attackStats.done / elapsed) : '-',
        o.fmt(all / elapsed),
        o.fmt(cpuMs / all, 2),
      ]);
    }
    o.table(
      `hostile CPU, inkan-milterd (verify mode, QueryCache no: a key lookup per message; MilterClient over loopback, ${seconds} s each): one normal sender beside 4 other connections`,
      ['other connections', 'normal msgs/s', 'normal latency ms (median / max)', 'others msgs/s', 'all msgs/s', 'milterd CPU ms/msg'],
      rows,
    );
  } finally {
    await child?.stop();
    await dns.stop();
  }
}

/** Both parts; prints two tables. */
export async function hostileCpu(o: HostileCpuOptions): Promise<void> {
  await library(o);
  await milterd(o);
}
