/**
 * DnsKeyResolver's timeout means what it says: a lookup gets the whole timeout, also when the
 * server turns slow after a run of fast answers (c-ares 1.34 then waits only about 1 s for one
 * answer on a channel it has used), and ends as TEMPFAIL when no answer comes in time. A real
 * DNS server (dnsmasq) behind a delaying forwarder (startSlowDns), both on loopback.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type DnsServer, freePort, type SlowDns, startDnsmasq, startSlowDns } from '@inkan/testbed';
import { DnsKeyResolver, KeyLookupError } from '../src/index.js';

const NAME = 'sel._domainkey.example.org';
const RECORD = 'v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=';

let dns: DnsServer;
const forwarders: SlowDns[] = [];

async function forwarder(): Promise<SlowDns> {
  const slow = await startSlowDns({ upstream: dns });
  forwarders.push(slow);
  return slow;
}

/** A resolver on `server` that has had `count` quick answers from it. */
async function warmed(
  server: string,
  count: number,
  options: { timeout?: number; tries?: number; maxQueriesInFlight?: number } = {},
): Promise<DnsKeyResolver> {
  const resolver = new DnsKeyResolver({ servers: [server], timeout: 5000, ...options });
  for (let i = 0; i < count; i++) expect(await resolver.lookup(NAME)).toEqual([RECORD]);
  return resolver;
}

/** How a lookup ended and after how many ms. */
async function timed(p: Promise<string[]>): Promise<{ ms: number; records?: string[]; code?: string }> {
  const started = performance.now();
  try {
    const records = await p;
    return { ms: performance.now() - started, records };
  } catch (error) {
    return { ms: performance.now() - started, code: KeyLookupError.isInstance(error) ? error.code : String(error) };
  }
}

beforeAll(async () => {
  dns = await startDnsmasq({ [NAME]: RECORD });
});

afterAll(async () => {
  for (const slow of forwarders) await slow.stop();
  await dns?.stop();
});

describe('DnsKeyResolver gives a lookup its whole timeout', () => {
  it('answers 1.2, 2.5 and 4.5 s late after 20 quick ones are all used (timeout 5 s); no answer at all is TEMPFAIL at the timeout', async () => {
    const delays = [1200, 2500, 4500, 'never'] as const;
    const setups = await Promise.all(
      delays.map(async (delay) => {
        const slow = await forwarder();
        const resolver = await warmed(slow.server, 20);
        slow.setDelay(delay);
        return { slow, resolver, before: slow.queries };
      }),
    );
    const outcomes = await Promise.all(setups.map(({ resolver }) => timed(resolver.lookup(NAME))));
    for (const [i, delay] of delays.entries()) {
      const outcome = outcomes[i];
      const { slow, before, resolver } = setups[i] as (typeof setups)[number];
      const queries = slow.queries - before;
      if (delay === 'never') {
        expect(outcome?.code).toBe('TEMPFAIL');
        // Not before the timeout (allowing for timer coarseness), and not long after it.
        expect(outcome?.ms).toBeGreaterThanOrEqual(4500);
        expect(outcome?.ms).toBeLessThan(15_000);
        // One query a second: five in all, no more.
        expect(queries).toBe(5);
      } else {
        expect(outcome?.records).toEqual([RECORD]);
        expect(outcome?.ms).toBeGreaterThanOrEqual(delay - 50);
        // A query a second while no answer has come.
        expect(queries).toBeLessThanOrEqual(Math.ceil(delay / 1000));
      }
      console.log(
        `delay ${delay}: ${outcome?.records ? 'answer' : outcome?.code} after ${Math.round(outcome?.ms ?? 0)} ms, ${queries} queries`,
      );
      // The lookup's other queries are cancelled, not left waiting.
      await vi.waitFor(() => expect(resolver.queriesInFlight).toBe(0), { timeout: 2000, interval: 20 });
    }
  });

  it('NXDOMAIN is an answer (NOTFOUND at once), also while earlier queries of the lookup are slow', async () => {
    const slow = await forwarder();
    const resolver = await warmed(slow.server, 5, { timeout: 3000 });
    // The first query's answer is held 1.5 s; the second (sent at 1 s) comes back at once.
    slow.setDelay(1500, 'gone._domainkey.example.org');
    const waiting = timed(resolver.lookup('gone._domainkey.example.org'));
    await new Promise((r) => setTimeout(r, 500));
    slow.setDelay(0, 'gone._domainkey.example.org');
    const outcome = await waiting;
    expect(outcome.code).toBe('NOTFOUND');
    expect(outcome.ms).toBeLessThan(3000);
    expect(slow.queriesFor('gone._domainkey.example.org')).toBe(2);
  });

  it('asks the next server at once when one fails outright, and the next one in turn when one is silent', async () => {
    const refused = `127.0.0.1:${await freePort()}`; // nothing listens: ICMP port unreachable
    const silent = await forwarder();
    silent.setDelay('never');
    const good = await forwarder();

    const afterRefusal = await timed(new DnsKeyResolver({ servers: [refused, good.server], timeout: 5000 }).lookup(NAME));
    expect(afterRefusal.records).toEqual([RECORD]);
    expect(afterRefusal.ms).toBeLessThan(1000);

    const afterSilence = await timed(new DnsKeyResolver({ servers: [silent.server, good.server], timeout: 5000 }).lookup(NAME));
    expect(afterSilence.records).toEqual([RECORD]);
    expect(afterSilence.ms).toBeGreaterThanOrEqual(900); // the second query goes at 1 s

    const allRefuse = await timed(new DnsKeyResolver({ servers: [refused], timeout: 5000 }).lookup(NAME));
    expect(allRefuse.code).toBe('TEMPFAIL');
    expect(allRefuse.ms).toBeLessThan(1000);
  });

  it('sends no retries while maxQueriesInFlight queries wait (first queries always go)', async () => {
    const slow = await forwarder();
    const resolver = await warmed(slow.server, 3, { timeout: 2500, maxQueriesInFlight: 2 });
    slow.setDelay('never');
    const before = slow.queries;
    const outcomes = await Promise.all([1, 2, 3].map(() => timed(resolver.lookup(NAME))));
    expect(outcomes.map((o) => o.code)).toEqual(['TEMPFAIL', 'TEMPFAIL', 'TEMPFAIL']);
    // Three first queries and no retries (without the cap: three each).
    expect(slow.queries - before).toBe(3);
  });
});
