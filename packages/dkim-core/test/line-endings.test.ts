/**
 * Line endings (#18): signMessage and verifyMessage read each bare LF as CRLF by default,
 * so an LF-only message (a Unix file, nodemailer's output) is signed as it will travel and
 * an LF-only copy of a signed message verifies. A lone CR is left as it is. lineEndings
 * 'as-is' keeps the bytes as given. Chunk boundaries anywhere (between CR and LF too) give
 * the same result as one chunk.
 */
import { Buffer } from 'node:buffer';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimKeyRecord, dkimpyVerify, type DnsServer, startDnsmasq, tempDir, type TestKeys } from '@inkan/testbed';
import {
  DkimError,
  type HeaderField,
  type MemoryKeyResolver,
  MessageParser,
  normalizeLineEndings,
  type SignatureOptions,
  signMessage,
  splitMessage,
  verifyMessage,
} from '../src/index.js';
import { keysAndResolver } from './key-fixture.js';

const CR = 0x0d;
const LF = 0x0a;
const CANONICALIZATIONS = ['simple/simple', 'simple/relaxed', 'relaxed/simple', 'relaxed/relaxed'] as const;
const NOW = () => 1_780_000_000_000;

/** An LF-only message with folding, trailing white space, 8-bit bytes, a lone CR and trailing empty lines. */
const LF_MESSAGE = Buffer.from(
  [
    'From: Joe  SixPack <joe@example.org>',
    'To: Suzie Q <suzie@example.net>,',
    '    Bob <bob@example.net>',
    'Subject: Is dinner ready?\t ',
    'Date: Sat, 28 Nov 2026 05:00:00 +0000',
    'Message-ID: <lf.1@example.org>',
    '',
    'Hi.',
    '',
    'We lost the game.  Are you hungry yet?   ',
    '\tCaf\xe9 at eight,\rsharp \t ',
    '',
    'Joe.',
    '',
    '',
  ].join('\n'),
  'latin1',
);

/** Bare LF to CRLF, byte by byte (independent of the library's normalizer). */
function toCrlf(input: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < input.length; i++) {
    const b = input[i] as number;
    if (b === LF && (i === 0 || input[i - 1] !== CR)) out.push(CR);
    out.push(b);
  }
  return Buffer.from(out);
}

/** CRLF to LF, as a Unix mailbox or an LF-only transport stores a message. */
function toLf(input: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < input.length; i++) {
    const b = input[i] as number;
    if (b === CR && input[i + 1] === LF) continue;
    out.push(b);
  }
  return Buffer.from(out);
}

async function* inChunks(message: Buffer, cuts: readonly number[]): AsyncGenerator<Buffer> {
  let from = 0;
  for (const cut of [...cuts, message.length]) {
    // A copy per chunk, as a socket would deliver it.
    yield Buffer.from(message.subarray(from, cut));
    from = cut;
  }
}

let keys: TestKeys;
let resolver: MemoryKeyResolver;

beforeAll(() => {
  ({ keys, resolver } = keysAndResolver());
});

const ed = (canonicalization: string): SignatureOptions => ({
  domain: 'example.org',
  selector: 'ed',
  privateKey: keys.ed25519.pem,
  canonicalization,
});
const rsa = (canonicalization: string): SignatureOptions => ({
  domain: 'example.org',
  selector: 'rsa',
  privateKey: keys.rsa2048.privateKey,
  canonicalization,
});

async function verdicts(message: Buffer, lineEndings?: 'normalize' | 'as-is'): Promise<string[]> {
  const results = await verifyMessage(message, { resolver, ...(lineEndings ? { lineEndings } : {}) });
  return results.map((r) => r.result);
}

describe('signing normalizes bare LF by default', () => {
  it('an LF-only message signed, then sent as CRLF, passes (every canonicalization, RSA and Ed25519)', async () => {
    expect(LF_MESSAGE.includes('\r\n')).toBe(false);
    const crlf = toCrlf(LF_MESSAGE);
    for (const c of CANONICALIZATIONS) {
      const fields = await signMessage(LF_MESSAGE, [rsa(c), ed(c)]);
      const sent = Buffer.concat([Buffer.from(fields, 'latin1'), crlf]);
      expect(await verdicts(sent, 'as-is'), c).toEqual(['pass', 'pass']);
      expect(await verdicts(sent), c).toEqual(['pass', 'pass']);
    }
  });

  it('signs an LF-only message exactly as its CRLF form', async () => {
    const crlf = toCrlf(LF_MESSAGE);
    for (const c of CANONICALIZATIONS) {
      const fromLf = await signMessage(LF_MESSAGE, ed(c), { now: NOW });
      const fromCrlf = await signMessage(crlf, ed(c), { now: NOW, lineEndings: 'as-is' });
      expect(fromLf, c).toBe(fromCrlf);
    }
  });

  it("lineEndings 'as-is' keeps the old behaviour: the LF-signed message fails as CRLF", async () => {
    const fields = await signMessage(LF_MESSAGE, ed('relaxed/relaxed'), { lineEndings: 'as-is' });
    const sent = Buffer.concat([Buffer.from(fields, 'latin1'), toCrlf(LF_MESSAGE)]);
    const [result] = await verifyMessage(sent, { resolver });
    expect(result?.result).toBe('fail');
    // And it differs from the normalized signature of the same input.
    const normalized = await signMessage(LF_MESSAGE, ed('relaxed/relaxed'), { now: NOW });
    expect(await signMessage(LF_MESSAGE, ed('relaxed/relaxed'), { now: NOW, lineEndings: 'as-is' })).not.toBe(normalized);
  });

  it('refuses an unknown lineEndings value', async () => {
    const bad = { lineEndings: 'lf' as unknown as 'as-is' };
    await expect(signMessage(LF_MESSAGE, ed('relaxed'), bad)).rejects.toSatisfy(
      (e: unknown) => DkimError.isInstance(e) && e.code === 'INVALID_OPTION',
    );
    await expect(verifyMessage(LF_MESSAGE, { resolver, ...bad })).rejects.toSatisfy(
      (e: unknown) => DkimError.isInstance(e) && e.code === 'INVALID_OPTION',
    );
  });
});

describe('verifying normalizes bare LF by default', () => {
  it('a CRLF message signed passes when delivered as LF (every canonicalization, RSA and Ed25519)', async () => {
    const crlf = toCrlf(LF_MESSAGE);
    for (const c of CANONICALIZATIONS) {
      const fields = await signMessage(crlf, [rsa(c), ed(c)]);
      const delivered = toLf(Buffer.concat([Buffer.from(fields, 'latin1'), crlf]));
      expect(delivered.includes('\r\n')).toBe(false);
      expect(await verdicts(delivered), c).toEqual(['pass', 'pass']);
      // The old behaviour, still available: the LF copy does not verify.
      expect(await verdicts(delivered, 'as-is'), c).not.toContain('pass');
    }
  });

  it('a lone CR stays a lone CR: it is neither dropped nor made a line end', async () => {
    const crlf = toCrlf(LF_MESSAGE);
    const fields = await signMessage(crlf, ed('simple/simple'));
    const signed = Buffer.concat([Buffer.from(fields, 'latin1'), crlf]);
    // The same message with the lone CR turned into CRLF is another message.
    const at = signed.indexOf('\rsharp');
    const changed = Buffer.concat([signed.subarray(0, at), Buffer.from('\r\n'), signed.subarray(at + 1)]);
    expect(await verdicts(toLf(signed))).toEqual(['pass']);
    expect(await verdicts(changed)).toEqual(['fail']);
  });
});

describe('chunk boundaries', () => {
  /** CRLF, bare LF, lone CR, CR CR LF and LF LF next to each other, and across the end of the header. */
  const MIXED = Buffer.from(
    'From: Joe <joe@example.org>\r\nSubject: a\n\tfolded\r\r\nTo: b@example.net\n\r\nx\r\n\ny\rz\r\r\n\n\r\n\r',
    'latin1',
  );

  it('splitting anywhere, between CR and LF too, never makes CRCRLF or CRLFLF', () => {
    const whole = splitMessage(normalizeLineEndings(MIXED));
    const parse = (pieces: Buffer[]) => {
      const fields: HeaderField[] = [];
      const body: Buffer[] = [];
      const parser = new MessageParser(
        {
          header: (f) => fields.push({ name: f.name, raw: Buffer.from(f.raw) }),
          endOfHeaders: () => undefined,
          body: (chunk) => body.push(Buffer.from(chunk)),
        },
        { lineEndings: 'normalize' },
      );
      for (const p of pieces) parser.write(p);
      parser.end();
      return { fields, body: Buffer.concat(body) };
    };
    for (let i = 0; i <= MIXED.length; i++) {
      for (const j of [i, i + 1, i + 2]) {
        if (j > MIXED.length) continue;
        const got = parse([MIXED.subarray(0, i), MIXED.subarray(i, j), MIXED.subarray(j)]);
        expect(
          got.fields.map((f) => f.raw.toString('latin1')),
          `cut at ${i},${j}`,
        ).toEqual(whole.headers.map((f) => f.raw.toString('latin1')));
        expect(got.body.equals(whole.body), `cut at ${i},${j}`).toBe(true);
      }
    }
    // One byte at a time.
    const bytes = parse([...MIXED].map((b) => Buffer.from([b])));
    expect(bytes.body.equals(whole.body)).toBe(true);
  });

  it('signing in two chunks, cut at every position, gives the one-chunk signature', async () => {
    for (const c of ['simple/simple', 'relaxed/relaxed']) {
      const one = await signMessage(MIXED, ed(c), { now: NOW });
      expect(one).toBe(await signMessage(normalizeLineEndings(MIXED), ed(c), { now: NOW, lineEndings: 'as-is' }));
      for (let i = 0; i <= MIXED.length; i++) {
        expect(await signMessage(inChunks(MIXED, [i]), ed(c), { now: NOW }), `${c}, cut at ${i}`).toBe(one);
      }
    }
  });

  it('verifying an LF copy in two chunks, cut at every position, passes', async () => {
    const fields = await signMessage(toCrlf(LF_MESSAGE), ed('simple/simple'));
    const delivered = toLf(Buffer.concat([Buffer.from(fields, 'latin1'), toCrlf(LF_MESSAGE)]));
    for (let i = 0; i <= delivered.length; i += 7) {
      const results = await verifyMessage(inChunks(delivered, [i]), { resolver });
      expect(
        results.map((r) => r.result),
        `cut at ${i}`,
      ).toEqual(['pass']);
    }
  });
});

describe('dkimpy agrees', () => {
  let dns: DnsServer;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir('inkan-lineendings-');
    dns = await startDnsmasq({
      'rsa._domainkey.example.org': dkimKeyRecord(keys.rsa2048),
      'ed._domainkey.example.org': dkimKeyRecord(keys.ed25519),
    });
  });

  afterAll(async () => {
    await dns?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('passes what inkan signed from LF input, sent as CRLF', async () => {
    const files: string[] = [];
    for (const c of CANONICALIZATIONS) {
      for (const [name, options] of [
        ['rsa', rsa(c)],
        ['ed', ed(c)],
      ] as const) {
        const fields = await signMessage(LF_MESSAGE, options);
        const file = join(dir, `${name}-${c.replace('/', '-')}.eml`);
        writeFileSync(file, Buffer.concat([Buffer.from(fields, 'latin1'), toCrlf(LF_MESSAGE)]));
        files.push(file);
      }
    }
    const py = await dkimpyVerify(dns.port, files);
    for (const file of files) {
      expect(py.find((v) => v.file === file)?.signatures, `dkimpy on ${file}`).toEqual([expect.objectContaining({ pass: true })]);
    }
  });
});
