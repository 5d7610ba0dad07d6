/**
 * An MTA that does not grant adding and changing header fields cannot get a correct answer
 * for any message (no signature, no Authentication-Results, forged ones left in place): the
 * connection is refused at negotiation, as libmilter does, so the MTA applies its milter
 * default action to it, instead of every message failing at its end and being retried in vain
 * (found by the milter-session fuzz campaign).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActionFlags, MilterClient, splitMessage } from '@inkan/milter-protocol';
import { freePort, makeKeys, tempDir, waitFor } from '@inkan/testbed';
import { insertedSignatures, type MilterdProcess, startMilterd } from './helpers.js';

const ALL_V6 = 0x1ff;
const MESSAGE = Buffer.from('From: joe@example.org\r\nTo: ann@example.net\r\nSubject: hi\r\n\r\nHello.\r\n', 'latin1');

let milterd: MilterdProcess;
let spec: string;

beforeAll(async () => {
  const dir = tempDir('inkan-negotiation-');
  const key = join(dir, 'sel.private');
  writeFileSync(key, makeKeys().rsa2048.pem, { mode: 0o600 });
  const port = await freePort();
  spec = `inet:${port}@127.0.0.1`;
  const conf = join(dir, 'milterd.conf');
  writeFileSync(conf, `Socket ${spec}\nDomain example.org\nSelector sel\nKeyFile ${key}\nAllowRoot yes\nRequireSafeKeys no\n`);
  milterd = await startMilterd(['-x', conf]);
});

afterAll(async () => {
  await milterd?.stop();
});

async function sign(client: MilterClient): Promise<string[]> {
  await client.connect({ hostname: 'localhost', family: 'inet', address: '127.0.0.1', port: 40000 });
  await client.mail('<joe@example.org>');
  await client.rcpt('<ann@example.net>');
  const { headers, body } = splitMessage(MESSAGE);
  for (const h of headers) await client.header(h.name, h.value);
  await client.endOfHeaders();
  await client.body(body);
  const result = await client.endOfMessage();
  return insertedSignatures(result.modifications);
}

describe('negotiation', () => {
  it.each([
    ['without SMFIF_ADDHDRS', ALL_V6 & ~ActionFlags.AddHeaders],
    ['without SMFIF_CHGHDRS', ALL_V6 & ~ActionFlags.ChangeHeaders],
  ])('an MTA offering every action %s is refused at negotiation and the refusal is logged', async (_what, actions) => {
    const before = (milterd.output().match(/does not offer the required actions/g) ?? []).length;
    await expect(MilterClient.open(spec, { actions, timeoutMs: 10_000 })).rejects.toThrow();
    await waitFor(() => (milterd.output().match(/does not offer the required actions/g) ?? []).length > before, 'the refusal logged');
  });

  it('an MTA offering both (without quarantine) gets its message signed', async () => {
    const client = await MilterClient.open(spec, { actions: ActionFlags.AddHeaders | ActionFlags.ChangeHeaders });
    try {
      expect(await sign(client)).toHaveLength(1);
    } finally {
      await client.quit();
    }
  });
});
