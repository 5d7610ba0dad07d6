/** Every fuzz target, loaded on demand (each worker loads only its own). */
import type { FuzzTarget } from '../target.js';

export const TARGETS: Record<string, () => Promise<FuzzTarget>> = {
  'milter-decoder': async () => (await import('./milter-decoder.js')).target,
  'milter-session': async () => (await import('./milter-session.js')).target,
  'dkim-signature': async () => (await import('./dkim-signature.js')).target,
  'domainkey-signature': async () => (await import('./domainkey-signature.js')).target,
  'key-record': async () => (await import('./key-record.js')).target,
  'header-fields': async () => (await import('./header-fields.js')).target,
  'dkim-canonicalization': async () => (await import('./dkim-canonicalization.js')).target,
  'domainkeys-canonicalization': async () => (await import('./domainkeys-canonicalization.js')).target,
  'authentication-results': async () => (await import('./authentication-results.js')).target,
  'milterd-config': async () => (await import('./milterd-config.js')).target,
  'header-limits': async () => (await import('./header-limits.js')).target,
  'key-record-sizes': async () => (await import('./key-record-sizes.js')).target,
};

export const TARGET_NAMES = Object.keys(TARGETS);

export async function loadTarget(name: string): Promise<FuzzTarget> {
  const load = TARGETS[name];
  if (!load) throw new Error(`no fuzz target "${name}" (targets: ${TARGET_NAMES.join(', ')})`);
  const target = await load();
  if (target.name !== name) throw new Error(`fuzz target module for "${name}" names itself "${target.name}"`);
  return target;
}
