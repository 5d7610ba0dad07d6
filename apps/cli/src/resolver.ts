import { DnsKeyResolver, FileKeyResolver, KeyLookupError, type KeyResolver } from '@inkan/dkim-core';
import { CliError } from './io.js';

/** Keys from --keys (a zone-style file) first, then DNS (--dns servers, or the system's). */
export async function makeResolver(options: { dns?: string[]; keys?: string; timeout?: number }): Promise<KeyResolver> {
  const dns = new DnsKeyResolver({ ...(options.dns ? { servers: options.dns } : {}), timeout: options.timeout ?? 5000, tries: 2 });
  if (!options.keys) return dns;
  let file: FileKeyResolver;
  try {
    file = await FileKeyResolver.fromFile(options.keys);
  } catch (error) {
    throw new CliError(`--keys: ${(error as Error).message}`);
  }
  return {
    async lookup(name) {
      try {
        return await file.lookup(name);
      } catch (error) {
        if (KeyLookupError.isInstance(error) && error.code === 'NOTFOUND' && options.dns) return dns.lookup(name);
        throw error;
      }
    },
  };
}
