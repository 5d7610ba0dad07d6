/**
 * Fleet on Redis: a private redis-server on a free loopback port with the ACL users of
 * docs/fleet.md: inkan-keytool as inkan-admin, every milterd as inkan-milterd (read-only).
 */
import { redisMissing, startRedis } from '@inkan/testbed';
import { Redis } from 'ioredis';
import { describe } from 'vitest';
import { fleetScenario } from './fleet.js';

const missing = redisMissing();

describe.skipIf(missing !== undefined && !process.env.CI)(`fleet: tables in Redis${missing ? ` (${missing})` : ''}`, () => {
  fleetScenario(async () => {
    const pw = { admin: `adm-${Math.random().toString(36).slice(2)}`, milterd: `mil-${Math.random().toString(36).slice(2)}` };
    const redis = await startRedis({
      acl: [
        `user inkan-admin on >${pw.admin} resetkeys ~inkan:* resetchannels &inkan:changed -@all +@read +@write +@transaction +publish +ping +info +select +client|setname`,
        `user inkan-milterd on >${pw.milterd} resetkeys %R~inkan:* resetchannels &inkan:changed -@all +hgetall +smembers +multi +exec +discard +subscribe +ping +info +select +client|setname`,
      ],
    });
    const milterd = redis.url({ user: 'inkan-milterd', password: pw.milterd, query: 'prefix=inkan:&poll=5&retry=2' });
    return {
      kind: 'redis',
      adminUri: redis.url({ user: 'inkan-admin', password: pw.admin }),
      milterdConfig: (o = {}) => `KeyTable ${milterd}\nSigningTable ${milterd}\n${o.hosts ? `InternalHosts ${milterd}\n` : ''}`,
      secrets: [pw.milterd, pw.admin],
      async insertBadRows(goodPem) {
        // Straight commands, as an administrator with redis-cli might, then the announcement.
        const r = new Redis(redis.url({ user: 'inkan-admin', password: pw.admin }), { lazyConnect: true, maxRetriesPerRequest: 1 });
        try {
          await r.connect();
          await r
            .multi()
            .hset(
              'inkan:keys',
              'missing._domainkey.bad-missing.example',
              JSON.stringify({ domain: 'bad-missing.example', selector: 'missing' }),
            )
            .hset('inkan:keys', 'pem._domainkey.bad-pem.example', JSON.stringify({ domain: 'bad-pem.example', selector: 'pem' }))
            .hset('inkan:private', 'pem._domainkey.bad-pem.example', '-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n')
            .hset('inkan:keys', 'nodomain._domainkey', JSON.stringify({ selector: 'nodomain' }))
            .hset('inkan:private', 'nodomain._domainkey', goodPem)
            .hset('inkan:keys', 'garbage', 'this is not JSON')
            .hset('inkan:signing', 'bad-missing.example', 'missing._domainkey.bad-missing.example')
            .hset('inkan:signing', 'bad-pem.example', 'pem._domainkey.bad-pem.example')
            .hset('inkan:signing', 'bad-nodomain.example', 'nodomain._domainkey')
            .hset('inkan:signing', 'dangling.example', 'nosuchkey._domainkey.dangling.example')
            .publish('inkan:changed', 'by hand')
            .exec();
        } finally {
          r.disconnect();
        }
      },
      stop: () => redis.stop({ save: true }),
      start: () => redis.start(),
      close: () => redis.close(),
    };
  });
});
