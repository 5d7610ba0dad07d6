/**
 * What the milter session target and its seeds share: a signing key made from a fixed seed
 * (so that committed seed messages signed with it verify), its DNS record, and milter
 * transactions as the MTA would send them.
 */
import { Buffer } from 'node:buffer';
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { ACTIONS_ALL, type MilterCommand, PROTOCOL_ALL, encodeCommand } from '@inkan/milter-protocol';

export const DOMAIN = 'example.org';
export const SELECTOR = 'fuzz';
export const AUTHSERV_ID = 'mx.example.org';

/** PKCS#8 header of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** A test-only key: anyone can rebuild it from this seed. */
const SEED = Buffer.from('inkan fuzz test key, not secret!', 'latin1');

export function fuzzKey(): { privateKey: KeyObject; pem: string; record: string } {
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, SEED]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  return { privateKey, pem, record: `v=DKIM1; k=ed25519; p=${spki.subarray(12).toString('base64')}` };
}

/** A whole milter conversation for one message, as bytes (the MTA's side only). */
export function transaction(options: {
  clientIp: string;
  headers: [string, string][];
  body: string;
  auth?: string;
  quit?: boolean;
}): Buffer {
  const commands: MilterCommand[] = [
    { type: 'negotiate', version: 6, actions: ACTIONS_ALL, protocol: PROTOCOL_ALL },
    {
      type: 'macro',
      command: 'C',
      macros: [
        ['j', AUTHSERV_ID],
        ['{daemon_name}', 'smtpd'],
      ],
    },
    {
      type: 'connect',
      hostname: 'client.example.net',
      family: options.clientIp.includes(':') ? 'inet6' : 'inet',
      port: 40000,
      address: options.clientIp,
    },
    { type: 'helo', hostname: 'client.example.net' },
    {
      type: 'macro',
      command: 'M',
      macros: [['i', 'ABC123'], ...(options.auth ? [['{auth_authen}', options.auth] as [string, string]] : [])],
    },
    { type: 'mail', sender: '<user@example.org>', args: ['SIZE=100'] },
    { type: 'rcpt', recipient: '<rcpt@example.net>', args: [] },
    { type: 'data' },
    ...options.headers.map(([name, value]): MilterCommand => ({ type: 'header', name, value: Buffer.from(value, 'latin1') })),
    { type: 'endOfHeaders' },
    { type: 'body', chunk: Buffer.from(options.body, 'latin1') },
    { type: 'macro', command: 'E', macros: [['i', 'ABC123']] },
    { type: 'endOfMessage', chunk: Buffer.alloc(0) },
    ...(options.quit === false ? [] : [{ type: 'quit' } as MilterCommand]),
  ];
  return Buffer.concat(commands.map(encodeCommand));
}
