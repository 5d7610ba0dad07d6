/**
 * Key records: parseKeyRecord (RFC 6376 §3.6.1) and parseDomainKeysKeyRecord (RFC 4870
 * §3.2.3) agree on what parses; a parsed record keeps its rules; importPublicKey turns any
 * p= into a key or a reason, never an exception; the DomainKeys checks run on anything
 * parsed; parseKeysFile (the local keys file) reads the text or names the line it cannot.
 */
import { parseKeysFile } from '@inkan/dkim-core';
import { importPublicKey, parseKeyRecord } from '@inkan/dkim-core/records';
import { checkDomainKeysKey, granularityMatches, parseDomainKeysKeyRecord } from '@inkan/domainkeys-verify';
import { type FuzzTarget, check, show } from '../target.js';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const FWS_EDGE = /^[ \t\r\n]|[ \t\r\n]$/;

function keysFile(text: string): void {
  try {
    const records = parseKeysFile(text);
    for (const [name, values] of records) {
      check(name === name.toLowerCase(), () => `keys file name ${show(name)} is not in lowercase`);
      check(values.length > 0, 'a keys file name without records');
    }
  } catch (error) {
    check(
      error instanceof Error && /^keys file:\d+: /.test(error.message),
      () => `parseKeysFile threw ${show(String(error))}, not a "keys file:LINE:" error`,
    );
  }
}

export const target: FuzzTarget = {
  name: 'key-record',
  description: 'parseKeyRecord, parseDomainKeysKeyRecord, importPublicKey, parseKeysFile',
  maxLength: 2048,
  dictionary: [
    'v=DKIM1',
    'v=DKIM2',
    'k=rsa',
    'k=ed25519',
    'k=RSA',
    'p=',
    'h=sha256',
    'h=sha1:sha256',
    's=email',
    's=*',
    't=y',
    't=s',
    't=y:s',
    'g=',
    'g=*',
    'g=user*',
    'n=notes',
    '; ',
    ';',
    '=',
    '"',
    '" "',
    'IN TXT',
    '(',
    ')',
    '#',
    '\n',
    '\r\n ',
    'sel._domainkey.example.org ',
    // An Ed25519 public key and the head of an RSA SubjectPublicKeyInfo.
    'p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=',
    'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA',
    'MCowBQYDK2VwAyEA',
  ],
  fuzz(data) {
    const text = data.toString('latin1');
    const dkim = parseKeyRecord(text);
    const dk = parseDomainKeysKeyRecord(text);
    check(dkim.ok === dk.ok, 'the DKIM and DomainKeys parsers disagree on whether the record parses');
    keysFile(text);
    keysFile(`sel._domainkey.example.org ${text}`);
    if (!dkim.ok) {
      check(dkim.error.startsWith('bad key record: '), () => `error ${show(dkim.error)} does not say "bad key record"`);
      return;
    }
    const r = dkim.record;
    check(BASE64.test(r.publicKey), () => `p=${show(r.publicKey)} is not base64`);
    check(r.version === undefined || r.version === 'DKIM1', () => `v=${show(r.version)} was accepted`);
    check(!FWS_EDGE.test(r.keyType) && r.keyType === r.keyType.toLowerCase(), () => `k= became ${show(r.keyType)}`);
    check(r.testing === r.flags.includes('y') && r.strict === r.flags.includes('s'), 't= flags and testing/strict disagree');
    check(r.serviceTypes.length > 0 || r.tags.has('s'), 'no service types without s=');
    for (const keyType of new Set([r.keyType, 'rsa', 'ed25519'])) {
      const key = importPublicKey(keyType, r.publicKey);
      if (key.ok) {
        check(key.key.type === 'public', 'importPublicKey gave a key that is not public');
        check(key.key.asymmetricKeyType === keyType, () => `k=${keyType} imported as ${key.key.asymmetricKeyType}`);
      } else check(key.error.length > 0, 'importPublicKey failed without a reason');
    }
    if (!dk.ok) return;
    const g = dk.record.granularity;
    check(g !== '', 'an empty granularity was kept (it means "*")');
    check(granularityMatches('*', 'anyone'), 'g=* does not match');
    for (const local of ['user', '', g, g.replace(/\*/g, '')]) {
      const matched = granularityMatches(g, local);
      check(typeof matched === 'boolean', 'granularityMatches gave no boolean');
      const why = checkDomainKeysKey(dk.record, { localPart: local, domain: 'example.org' }, 'example.org');
      check(
        why === undefined || (why.reason.length > 0 && why.code.startsWith('key-')),
        'checkDomainKeysKey refused without a reason or a key code',
      );
    }
  },
};
