export {
  type GeneratedKey,
  type KeyKind,
  DEFAULT_RSA_BITS,
  MIN_RSA_BITS,
  MAX_RSA_BITS,
  generateDkimKey,
  describe,
  publicKeyValue,
  readPrivateKeyFile,
} from './keys.js';
export {
  type KeyRecordOptions,
  type ZoneRecordOptions,
  formatKeyRecord,
  formatZoneRecord,
  formatQuotedStrings,
  splitTxtStrings,
} from './record.js';
export {
  type GenkeyOptions,
  type GenkeyResult,
  type KeySpec,
  genkey,
  nextSelector,
  selectorFromDate,
  checkNames,
  GenkeyError,
  EX_CANTCREAT,
  EX_NOPERM,
} from './genkey.js';
export { type TestKeyOptions, type TestKeyReport, type TestKeyStatus, testKey, exitCode } from './testkey.js';
export { type PolicyRecord, type DmarcOptions, dmarcRecord, adspRecord, sspRecord } from './policy.js';
export { type Owner, resolveOwner } from './owner.js';
export { type WriteOptions, writeFileAtomic } from './secure-file.js';
export { main } from './cli.js';
