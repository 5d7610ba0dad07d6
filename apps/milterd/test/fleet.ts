/**
 * The fleet scenario, run once against PostgreSQL and once against Redis (fleet-*.test.ts):
 * several inkan-milterd processes share KeyTable and SigningTable in one store, changed with
 * inkan-keytool; messages go through the real milter protocol and dkimpy verifies them
 * against keys served by dnsmasq.
 */
import { generateKeyPairSync } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runTransaction } from '@inkan/milter-protocol';
import { type DnsServer, dkimpyVerify, freePort, runProgram, startDnsmasq, tempDir, waitFor } from '@inkan/testbed';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type MilterdProcess, startMilterd } from './helpers.js';

const KEYTOOL = resolve(import.meta.dirname, '..', '..', '..', 'packages', 'keytool', 'bin', 'inkan-keytool.js');

/** What the scenario needs from one kind of store. */
export interface FleetStore {
  kind: 'postgresql' | 'redis';
  /** inkan-keytool's account (reads and writes everything). */
  adminUri: string;
  /** Lines for milterd's config file: KeyTable, SigningTable (and InternalHosts if hosts) in the store, as the milterd account. */
  milterdConfig(o?: { hosts?: boolean }): string;
  /** Secrets that must never show up in milterd's output. */
  secrets: string[];
  /** Write rows that are wrong (missing key, bad PEM, no domain, dangling name) behind inkan-keytool's back. */
  insertBadRows(goodPem: string): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function keytool(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await runProgram(process.execPath, [KEYTOOL, ...args], { timeoutMs: 60_000, env: { ...process.env, ...env } });
  if (r.code !== 0) throw new Error(`inkan-keytool ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

let counter = 0;

export interface Sent {
  /** accept, tempfail (451 reply), or another reply. */
  outcome: string;
  /** s= of each DKIM-Signature inserted. */
  selectors: string[];
  /** d= of each. */
  domains: string[];
  /** The signed message, written to a file (when signed). */
  file?: string;
}

/** One message through a milterd with the milter protocol, as Postfix would send it. */
export async function send(port: number, dir: string, from: string, client = '127.0.0.1'): Promise<Sent> {
  counter++;
  const message = Buffer.from(
    `From: Sender <${from}>\r\nTo: Suzie <suzie@example.com>\r\nSubject: fleet ${counter}\r\nDate: Sat, 28 Nov 2026 05:00:00 +0000\r\nMessage-ID: <fleet.${counter}.${Date.now()}@inkan.test>\r\n\r\nHello from the fleet, message ${counter}.\r\n`,
  );
  const tx = await runTransaction(`inet:${port}@127.0.0.1`, {
    client: { hostname: client === '127.0.0.1' ? 'localhost' : `[${client}]`, family: 'inet', address: client, port: 40000 },
    sender: from,
    recipients: ['suzie@example.com'],
    message,
  });
  const reply = tx.outcome.reply;
  const outcome = !reply ? 'continue' : reply.type === 'replyCode' ? (reply.text.startsWith('451') ? 'tempfail' : reply.text) : reply.type;
  const sigs = (tx.endOfMessage?.modifications ?? []).flatMap((m) =>
    m.type === 'insertHeader' && m.name === 'DKIM-Signature' ? [m.value.toString('latin1')] : [],
  );
  const sent: Sent = {
    outcome,
    selectors: sigs.map((v) => /\bs=([^;\s]+)/.exec(v)?.[1] ?? ''),
    domains: sigs.map((v) => /\bd=([^;\s]+)/.exec(v)?.[1] ?? ''),
  };
  if (sigs.length > 0) {
    const fields = sigs.map((v) => `DKIM-Signature:${v.startsWith(' ') ? '' : ' '}${v.replace(/\r?\n/g, '\r\n')}\r\n`).join('');
    sent.file = join(dir, `signed-${counter}.eml`);
    writeFileSync(sent.file, Buffer.concat([Buffer.from(fields, 'latin1'), message]));
  }
  return sent;
}

/** Send (every 100 ms, bounded) until a message from `from` is signed with `selector`; returns it and how long after `started` that was. */
async function untilSigned(
  port: number,
  dir: string,
  from: string,
  selector: string,
  started = Date.now(),
  seconds = 10,
): Promise<{ sent: Sent; ms: number }> {
  let last: Sent | undefined;
  for (let i = 0; i < seconds * 10; i++) {
    last = await send(port, dir, from);
    if (last.selectors.includes(selector)) return { sent: last, ms: Date.now() - started };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no signature with s=${selector} for ${from} within ${seconds} s; last: ${JSON.stringify(last)}`);
}

async function metric(port: number, name: string): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : undefined;
}

interface Host {
  milterd: MilterdProcess;
  port: number;
  metricsPort: number;
  name: string;
}

/** The whole scenario for one store (call inside a describe). */
export function fleetScenario(open: () => Promise<FleetStore>): void {
  let store: FleetStore;
  let dns: DnsServer;
  let dir: string;
  const hosts: Host[] = [];
  const extra: MilterdProcess[] = [];
  const signedFiles: string[] = [];
  /** The records keytool printed, by selector. */
  const records: Record<string, string> = {};

  const startHost = async (name: string, o: { hosts?: boolean } = {}): Promise<Host> => {
    const port = await freePort();
    const metricsPort = await freePort();
    const conf = join(dir, `${name}.conf`);
    writeFileSync(conf, `Socket inet:${port}@127.0.0.1\nMetricsListen 127.0.0.1:${metricsPort}\nAllowRoot yes\n${store.milterdConfig(o)}`, {
      mode: 0o600,
    });
    const milterd = await startMilterd(['-x', conf]);
    return { milterd, port, metricsPort, name };
  };

  const generate = async (domain: string, selector: string, more: string[] = []) => {
    const out = JSON.parse(await keytool(['--json', 'genkey', '-d', domain, '-s', selector, '--store', store.adminUri, ...more])) as {
      record: string;
      name: string;
    };
    records[`${selector}._domainkey.${domain}`] = out.record;
    return out;
  };

  beforeAll(async () => {
    dir = tempDir(`inkan-fleet-`);
    store = await open();
    // Keys are made in the store first, and published in DNS before they sign anything.
    await generate('example.org', 's1', ['--sign', 'example.org']);
    await generate('example.org', 's2');
    await generate('example.org', 's3');
    await generate('example.net', 'n1', ['--type', 'ed25519']);
    dns = await startDnsmasq(records);
    hosts.push(await startHost('a'), await startHost('b'));
  });

  afterAll(async () => {
    for (const h of [...hosts.map((x) => x.milterd), ...extra]) await h.stop().catch(() => {});
    await dns?.stop().catch(() => {});
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const alive = () => {
    for (const h of [...hosts.map((x) => x.milterd), ...extra]) expect(h.child.exitCode, h.output()).toBeNull();
  };

  it('two milterds share the store: a domain added and a key rotated with inkan-keytool are used by both for the next message', async () => {
    for (const h of hosts) {
      const org = await send(h.port, dir, 'joe@example.org');
      expect(org.selectors, h.name).toEqual(['s1']);
      signedFiles.push(org.file as string);
      const net = await send(h.port, dir, 'ann@example.net');
      expect(net.outcome, h.name).toBe('accept');
      expect(net.selectors, h.name).toEqual([]);
    }

    // A domain added.
    await keytool(['store', 'sign', '--store', store.adminUri, '--pattern', 'example.net', '--domain', 'example.net', '--selector', 'n1']);
    const addedAt = Date.now();
    const added: number[] = [];
    for (const h of hosts) {
      const { sent, ms } = await untilSigned(h.port, dir, 'ann@example.net', 'n1', addedAt);
      expect(sent.domains).toEqual(['example.net']);
      signedFiles.push(sent.file as string);
      added.push(ms);
    }

    // A key rotated.
    const rotated = await keytool(['store', 'rotate', '--store', store.adminUri, '--domain', 'example.org', '--selector', 's2']);
    expect(rotated).toMatch(/example\.org now signs with s2\._domainkey\.example\.org/);
    const rotatedAt = Date.now();
    const rotation: number[] = [];
    for (const h of hosts) {
      const { sent, ms } = await untilSigned(h.port, dir, 'joe@example.org', 's2', rotatedAt);
      expect(sent.selectors).toEqual(['s2']);
      signedFiles.push(sent.file as string);
      rotation.push(ms);
    }
    console.log(
      `${store.kind}: domain added reached both hosts after ${added.join(' ms, ')} ms; rotation after ${rotation.join(' ms, ')} ms (measured from the keytool command's exit)`,
    );

    // The old selector can go now; the one in use cannot.
    await keytool(['store', 'retire', '--store', store.adminUri, '--domain', 'example.org', '--selector', 's1']);
    await expect(keytool(['store', 'retire', '--store', store.adminUri, '--domain', 'example.org', '--selector', 's2'])).rejects.toThrow(
      /still signs for example\.org/,
    );
    for (const h of hosts) await h.milterd.waitForOutput(/"reason":"changed[^\n]*"msg":"signing tables loaded from the store"/);

    const verdicts = await dkimpyVerify(dns.port, signedFiles);
    expect(verdicts).toHaveLength(signedFiles.length);
    for (const v of verdicts)
      expect(
        v.signatures.map((s) => s.pass),
        `${v.file}: ${JSON.stringify(v.signatures)}`,
      ).toEqual([true]);
    for (const h of hosts) {
      expect(await metric(h.metricsPort, 'inkan_store_up')).toBe(1);
      expect(await metric(h.metricsPort, 'inkan_store_keys')).toBe(3); // s2, s3, n1 (s1 is retired)
      for (const secret of store.secrets) expect(h.milterd.output()).not.toContain(secret);
    }
    alive();
  });

  it('InternalHosts in the store: changed with inkan-keytool, used for the next message', async () => {
    const d = await startHost('hosts', { hosts: true });
    extra.push(d.milterd);
    // The hosts table is empty: a client at 192.0.2.7 is external, its mail verified, not signed.
    const before = await send(d.port, dir, 'joe@example.org', '192.0.2.7');
    expect([before.outcome, before.selectors]).toEqual(['accept', []]);
    await keytool(['store', 'hosts', '--store', store.adminUri, '--set', '127.0.0.1,192.0.2.0/24']);
    const started = Date.now();
    let after: Sent | undefined;
    await waitFor(
      async () => {
        after = await send(d.port, dir, 'joe@example.org', '192.0.2.7');
        return after.selectors.length > 0;
      },
      'mail from 192.0.2.7 signed',
      100,
      100,
    );
    expect(after?.selectors).toEqual(['s2']);
    signedFiles.push(after?.file as string);
    console.log(`${store.kind}: InternalHosts change used after ${Date.now() - started} ms`);
    const outsider = await send(d.port, dir, 'joe@example.org', '198.51.100.1');
    expect([outsider.outcome, outsider.selectors]).toEqual(['accept', []]);
    // The hosts that read InternalHosts from their config file are not affected.
    const a = await send(hosts[0]?.port as number, dir, 'joe@example.org', '192.0.2.7');
    expect(a.selectors).toEqual([]);
    alive();
  });

  it('bad rows in the store are logged and left out; the rest keeps signing; their senders are tempfailed, nothing crashes', async () => {
    const goodPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    await store.insertBadRows(goodPem);
    for (const h of hosts) {
      await h.milterd.waitForOutput(/does not hold a PEM private key/, 200);
      const out = h.milterd.output();
      expect(out).toMatch(/"problem":"[^"]*missing[^"]*has no private key/);
      expect(out).toMatch(/"problem":"[^"]*pem[^"]*does not hold a PEM private key/);
      expect(out).toMatch(/"problem":"[^"]*selector nodomain has no domain/);
      expect(out).toMatch(
        /"problem":"[^"]*SigningTable names key \\"nosuchkey\._domainkey\.dangling\.example\\", which KeyTable does not have/,
      );
      if (store.kind === 'redis') expect(out).toMatch(/"problem":"inkan:keys garbage: the value is not a JSON object/);

      // The rest of the table still works...
      const org = await send(h.port, dir, 'joe@example.org');
      expect(org.selectors).toEqual(['s2']);
      signedFiles.push(org.file as string);
      const net = await send(h.port, dir, 'ann@example.net');
      expect(net.selectors).toEqual(['n1']);
      signedFiles.push(net.file as string);
      // ...and mail that should be signed with a bad row's key is tempfailed, never passed unsigned.
      for (const from of ['x@bad-pem.example', 'x@bad-missing.example', 'x@bad-nodomain.example', 'x@dangling.example']) {
        const held = await send(h.port, dir, from);
        expect([from, held.outcome, held.selectors]).toEqual([from, 'tempfail', []]);
      }
      // A domain with no entry at all is not ours: passed as before.
      const other = await send(h.port, dir, 'x@unrelated.example');
      expect(other.outcome).toBe('accept');
      expect(await metric(h.metricsPort, 'inkan_store_bad_rows')).toBeGreaterThanOrEqual(4);
      expect(await metric(h.metricsPort, 'inkan_messages_held_total')).toBeGreaterThanOrEqual(4);
    }
    const verdicts = await dkimpyVerify(dns.port, signedFiles.slice(-4));
    for (const v of verdicts)
      expect(
        v.signatures.map((s) => s.pass),
        v.file,
      ).toEqual([true]);
    alive();
  });

  it('store stopped mid-run: both keep signing with the cached tables; a milterd started meanwhile tempfails; restarted: updates resume without restarting milterd', async () => {
    await store.stop();
    for (const h of hosts) {
      await h.milterd.waitForOutput(/store unreachable: keeping the last good tables/, 300);
      await waitFor(async () => (await metric(h.metricsPort, 'inkan_store_up')) === 0, `${h.name}: inkan_store_up 0`, 100, 100);
    }
    const during: string[] = [];
    for (const h of hosts) {
      const org = await send(h.port, dir, 'joe@example.org');
      expect(org.selectors, h.name).toEqual(['s2']);
      const net = await send(h.port, dir, 'ann@example.net');
      expect(net.selectors, h.name).toEqual(['n1']);
      during.push(org.file as string, net.file as string);
    }
    // A milterd started while the store is down: ready, but mail to sign is tempfailed
    // (no key is known yet); mail from outside is still verified.
    const late = await startHost('late');
    extra.push(late.milterd);
    expect(late.milterd.output()).toMatch(/store unreachable and no tables loaded yet: mail to sign is tempfailed/);
    const held = await send(late.port, dir, 'joe@example.org');
    expect([held.outcome, held.selectors]).toEqual(['tempfail', []]);
    const inbound = await send(late.port, dir, 'someone@example.com', '203.0.113.5');
    expect(inbound.outcome).toBe('accept');

    const restarted = Date.now();
    await store.start();
    for (const h of hosts) {
      await h.milterd.waitForOutput(/"msg":"store reachable again"/, 300);
      await waitFor(async () => (await metric(h.metricsPort, 'inkan_store_up')) === 1, `${h.name}: inkan_store_up 1`, 100, 100);
    }
    await late.milterd.waitForOutput(/"msg":"signing tables loaded from the store"/, 300);
    const reconnectMs = Date.now() - restarted;

    // Updates flow again, to every host, without restarting any milterd.
    await keytool(['store', 'rotate', '--store', store.adminUri, '--domain', 'example.org', '--selector', 's3']);
    const rotatedAt = Date.now();
    const times: number[] = [];
    for (const h of [...hosts, late]) {
      const { sent, ms } = await untilSigned(h.port, dir, 'joe@example.org', 's3', rotatedAt);
      during.push(sent.file as string);
      times.push(ms);
    }
    console.log(
      `${store.kind}: reconnected within ${reconnectMs} ms of the store's restart; rotation after restart reached the 3 hosts after ${times.join(' ms, ')} ms`,
    );
    const verdicts = await dkimpyVerify(dns.port, during);
    expect(verdicts).toHaveLength(during.length);
    for (const v of verdicts)
      expect(
        v.signatures.map((s) => s.pass),
        `${v.file}: ${JSON.stringify(v.signatures)}`,
      ).toEqual([true]);
    for (const h of hosts) expect(h.milterd.output()).not.toMatch(/"msg":"ready"[\s\S]*"msg":"ready"/); // never restarted
    alive();
  });
}
