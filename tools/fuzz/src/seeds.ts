/**
 * Writes the committed seed corpora (tools/fuzz/corpus/<target>/): a few small, valid
 * inputs per target, made with inkan's own encoders and signer, so that fuzzing starts
 * deep in each grammar. Run after a build: node tools/fuzz/dist/seeds.js [TARGET...]
 * (only the targets named; the RSA key of the key-record seeds is new each time).
 */
import { Buffer } from 'node:buffer';
import { generateKeyPairSync } from 'node:crypto';
import { rmSync } from 'node:fs';
import { formatAuthenticationResults, signMessage } from '@inkan/dkim-core';
import { encodeResponse } from '@inkan/milter-protocol';
import { AUTHSERV_ID, DOMAIN, SELECTOR, fuzzKey, transaction } from './fixtures.js';
import { dirs, saveInput } from './engine/files.js';
import { TARGET_NAMES } from './targets/index.js';

const key = fuzzKey();
const message = [
  'From: User <user@example.org>',
  'To: rcpt@example.net',
  'Subject: a test',
  '\tfolded',
  'Date: Sat, 28 Nov 2026 10:00:00 +0000',
  'Message-ID: <1@example.org>',
  '',
  'Hello  there, \t',
  '',
  'bye',
  '',
  '',
].join('\r\n');
const signatureField = (
  await signMessage(Buffer.from(message, 'latin1'), {
    domain: DOMAIN,
    selector: SELECTOR,
    privateKey: key.privateKey,
    expiresIn: 3600,
    bodyLength: true,
    copyHeaders: true,
  })
).trimEnd();
const signatureValue = signatureField.slice(signatureField.indexOf(':') + 1);
const headerLines = message.split('\r\n\r\n')[0] as string;
const body = message.slice(message.indexOf('\r\n\r\n') + 4);

/** The fields of a header block as milter header commands: name, and value folded with LF. */
function milterHeaders(block: string): [string, string][] {
  return block
    .replace(/\r\n(?=[ \t])/g, '\n')
    .split('\r\n')
    .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)]);
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
const rsaP = rsa.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
const domainKeySignature =
  ' a=rsa-sha1; q=dns; c=nofws; s=fuzz; d=example.org; h=from:to:subject; b=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ==';

const seeds: Record<string, (string | Buffer)[]> = {
  'milter-decoder': [
    transaction({ clientIp: '127.0.0.1', headers: milterHeaders(headerLines), body }),
    Buffer.concat([
      encodeResponse({
        type: 'negotiate',
        version: 6,
        actions: 0x1ff,
        protocol: 0x1fffff,
        macros: [{ stage: 0, names: 'j {daemon_name}' }],
      }),
      encodeResponse({ type: 'insertHeader', index: 0, name: 'DKIM-Signature', value: Buffer.from(signatureValue.replace(/\r\n/g, '\n')) }),
      encodeResponse({ type: 'replyCode', text: '550 5.7.1 rejected' }),
      encodeResponse({ type: 'changeHeader', index: 1, name: 'Authentication-Results', value: Buffer.alloc(0) }),
      encodeResponse({ type: 'quarantine', reason: 'dkim' }),
      encodeResponse({ type: 'accept' }),
    ]),
  ],
  'milter-session': [
    // Signed: an internal client with a From in the signing domain.
    transaction({ clientIp: '127.0.0.1', headers: milterHeaders(headerLines), body }),
    // Verified: an outside client, a valid signature, a DomainKey-Signature, a forged A-R.
    transaction({
      clientIp: '192.0.2.7',
      headers: [
        ['DKIM-Signature', signatureValue.replace(/\r\n/g, '\n')],
        ['DomainKey-Signature', domainKeySignature],
        ['Authentication-Results', ` ${AUTHSERV_ID}; dkim=pass header.d=example.org`],
        ...milterHeaders(headerLines),
      ],
      body,
    }),
    // An authenticated client from outside, two messages on one connection.
    Buffer.concat([
      transaction({ clientIp: '2001:db8::5', headers: milterHeaders(headerLines), body, auth: 'user', quit: false }),
      transaction({ clientIp: '198.51.100.1', headers: [['From', ' a@example.net']], body: 'x\r\n' }).subarray(17),
    ]),
  ],
  'dkim-signature': [
    signatureValue,
    ' v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel; h=from:to; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==',
  ],
  'domainkey-signature': [domainKeySignature, ' a=rsa-sha1; s=sel; d=Example.ORG.; b=AAAA\r\n\tBBBB'],
  'key-record': [
    key.record,
    `v=DKIM1; k=rsa; t=y:s; h=sha256; s=email; p=${rsaP}`,
    `"v=DKIM1; k=rsa; " "p=${rsaP.slice(0, 100)}" "${rsaP.slice(100)}"`,
    `k=rsa; g=user*; t=y; p=${rsaP}`,
    `fuzz._domainkey.example.org. 300 IN TXT ( "v=DKIM1; k=ed25519; "\n  "${key.record.slice(key.record.indexOf('p='))}" ) ; comment`,
  ],
  'header-fields': [
    message,
    message.replace(/\r\n/g, '\n'),
    `${headerLines}\r\nSender: "Joe, Q." (comment) <joe@example.org>, other@example.net\r\n`,
  ],
  'dkim-canonicalization': [body, `${headerLines}\r\n`, ' \t a  b\t\r\n\r\n \r\nc \r\n\r\n\r\n'],
  'domainkeys-canonicalization': [body, `${headerLines}\r\n`, ' a b \r\n\r \n\r\n\r\n'],
  'authentication-results': [
    ` ${formatAuthenticationResults(AUTHSERV_ID, [
      {
        method: 'dkim',
        result: 'pass',
        comments: ['2048-bit key'],
        properties: [
          { ptype: 'header', property: 'd', value: DOMAIN },
          { ptype: 'header', property: 'i', value: '@example.org' },
        ],
      },
    ])}`,
    ' mx.example.org 1; dkim=fail reason="body hash did not verify" header.d=example.org header.b=abcd1234; spf=pass (sender SPF authorized) smtp.mailfrom=user@example.org',
    ' "quoted\\"id"; none',
  ],
  // Programs for the target (see its plan()): flags, field limit, byte limit (2 bytes), then operations.
  'header-limits': [
    // Signing, On-Security tempfail, 10 fields and 4,096 bytes: a jump to exactly the field limit.
    Buffer.from('01090c000102', 'hex'),
    // Verifying, reject, 5 fields: a signature, a forged A-R, then past the field limit.
    Buffer.from('020400000304010401', 'hex'),
    // Verifying, quarantine, leading space, a second message: a big field past 2,048 bytes, a second From.
    Buffer.from('2e02040002100005', 'hex'),
    // Signing, discard, 33 fields: a field of raw bytes with a bare LF, a run of fillers.
    Buffer.concat([Buffer.from('05200f000605', 'hex'), Buffer.from('X-Test\x04a\nbc', 'latin1'), Buffer.from('000410', 'hex')]),
  ],
  // Key choice, pool index or size, encoding/exponent, record flags, g=, verifier options (see the target).
  'key-record-sizes': [
    Buffer.from('000801000000', 'hex'), // the 2048-bit key as published: passes
    Buffer.from('000501030200', 'hex'), // 1025 bits, v=DKIM1
    Buffer.from('00050400000f', 'hex'), // 1025 bits as PKCS#1, maxKeyBits 1024
    Buffer.from('03040820000000', 'hex'), // the 1024-bit modulus with a 33..96-bit exponent
    Buffer.from('0420010011220000000000', 'hex'), // a built 8,193-bit modulus
    Buffer.from('060000000000', 'hex'), // the Ed25519 key
    Buffer.from('06011000000000', 'hex'), // a short Ed25519 key
    Buffer.from('0700aabbcc', 'hex'), // raw p=
  ],
  'milterd-config': [
    [
      '# inkan-milterd',
      'Mode            sv',
      'Domain          example.org, example.net',
      'Selector        sel',
      'KeyFile         /etc/inkan/sel.private',
      'SigningKeys     ed:/etc/inkan/ed.private',
      'Socket          inet:8891@127.0.0.1',
      'UMask           002',
      'Canonicalization relaxed/simple',
      'InternalHosts   127.0.0.1, ::1, 10.0.0.0/8',
      'On-BadSignature reject',
      'AlwaysAddARHeader yes',
      'MilterIdleTimeout 600',
      '',
    ].join('\n'),
    'KeyTable refile:/etc/inkan/keys\r\nSigningTable postgresql://inkan@db.example.org/mail?table=dkim_keys\r\nQueryCache no # off\r\n',
  ],
};

const only = process.argv.slice(2);
for (const name of only.length > 0 ? only : TARGET_NAMES) {
  const list = seeds[name];
  if (!list) throw new Error(`no seeds for ${name}`);
  rmSync(dirs.corpus(name), { recursive: true, force: true });
  for (const seed of list) saveInput(dirs.corpus(name), typeof seed === 'string' ? Buffer.from(seed, 'latin1') : seed);
  console.log(`${name}: ${list.length} seeds`);
}
