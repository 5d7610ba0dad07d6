import { dkimKeyRecord, makeKeys, type TestKeys } from '@inkan/testbed';
import { type KeyLookupError, MemoryKeyResolver } from '../src/index.js';

/**
 * Fresh test keys and a MemoryKeyResolver holding example.org's "rsa" (RSA 2048) and "ed"
 * (Ed25519) selectors, plus the records `more` makes from the same keys.
 */
export function keysAndResolver(more: (keys: TestKeys) => Record<string, string | KeyLookupError> = () => ({})): {
  keys: TestKeys;
  resolver: MemoryKeyResolver;
} {
  const keys = makeKeys();
  const resolver = new MemoryKeyResolver({
    'rsa._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
    'ed._domainkey.example.org': dkimKeyRecord(keys.ed25519),
    ...more(keys),
  });
  return { keys, resolver };
}
