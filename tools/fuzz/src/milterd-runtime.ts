/**
 * inkan-milterd's runtime for the milter targets: the config given, the fuzz key signing
 * for example.org, loopback internal, the key in memory, and error-level log lines (the
 * filter's internal errors) handed to `onError`.
 */
import { MemoryKeyResolver } from '@inkan/dkim-core';
import { HostList, type Runtime, SigningPlan, keyFromPem, parseConfigText } from '@inkan/milterd/internal';
import { pino } from 'pino';
import { AUTHSERV_ID, DOMAIN, SELECTOR, fuzzKey } from './fixtures.js';

export function milterdRuntime(configText: string, onError: (line: string) => void): Runtime {
  const key = fuzzKey();
  const config = parseConfigText(configText, 'fuzz.conf');
  const signing = keyFromPem(SELECTOR, '%', SELECTOR, key.pem, 'fuzz key', 'fuzz');
  const plan = new SigningPlan([signing], [{ pattern: DOMAIN, keys: [{ ...signing, domain: DOMAIN }] }], {
    wildcard: false,
    multiple: false,
    subDomains: false,
  });
  const logger = pino({ level: 'error' }, { write: (line: string) => onError(line.trim()) });
  return {
    config,
    plan,
    internalHosts: new HostList(['127.0.0.1', '::1']),
    resolver: new MemoryKeyResolver({ [`${SELECTOR}._domainkey.${DOMAIN}`]: key.record }),
    authservId: AUTHSERV_ID,
    logger,
  };
}
