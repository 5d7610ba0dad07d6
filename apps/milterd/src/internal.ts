/**
 * Internals of @inkan/milterd for inkan's own fuzzers and tests: the configuration parser,
 * tables, host lists, the per-message decision and the privilege helpers. Not covered by
 * semver. Reachable only under the "inkan-internal" export condition
 * (`node --conditions=inkan-internal`, tsconfig `customConditions`), so that an npm user
 * cannot import it by accident; the public API is the package's main entry.
 */
export * from './index.js';
export {
  type Action,
  type Dataset,
  type StoreDataset,
  defaults,
  isStoreDataset,
  parseConfigText,
  parseDataset,
  setOption,
} from './config/options.js';
export {
  SigningPlan,
  type PlanLookup,
  type SigningKey,
  checkKeyFileSafety,
  keyFromPem,
  loadSigningPlan,
  planFromTables,
} from './config/tables.js';
export { SharedTables, StoreRegistry, storeLocationFor } from './config/stores/store-plan.js';
export { HostList, normalizeAddress } from './hosts.js';
export { fromAddress } from './address.js';
export { verdictAction } from './filter.js';
export { parseCommandLine } from './cli.js';
export { type RunAs, dropPrivileges, nobody, resolveRunAs } from './privileges.js';
