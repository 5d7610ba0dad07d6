/**
 * Full milter transactions per second, client <-> server over a unix socket, for a 4 KiB
 * and a 1 MiB message. The filter does what a DKIM signer's milter side does: it hashes
 * every header and body chunk and adds one header at end of message.
 *
 *   pnpm --filter @inkan/milter-protocol bench          (BENCH_SECONDS=2 per scenario)
 *
 * Scenarios: one connection per message (as Postfix opens one per SMTP session), several
 * messages per connection, and 8 connections in parallel. Prints figures; asserts nothing.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActionFlags, MilterClient, ProtocolFlags, type SocketSpec, createMilterServer, splitMessage } from '../src/index.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);

function makeMessage(size: number): Buffer {
  const head = [
    'From: Alice <alice@example.org>',
    'To: Bob <bob@example.net>',
    'Subject: benchmark message',
    'Date: Sat, 28 Nov 2026 04:00:00 +0000',
    'Message-ID: <bench@example.org>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    '',
  ].join('\r\n');
  const line = `${'The quick brown fox jumps over the lazy dog. '.repeat(2).slice(0, 76)}\r\n`;
  let body = '';
  while (head.length + body.length + line.length <= size) body += line;
  body += 'x'.repeat(Math.max(0, size - head.length - body.length - 2));
  body += '\r\n';
  return Buffer.from(head + body, 'latin1');
}

async function transaction(
  client: MilterClient,
  headers: ReturnType<typeof splitMessage>['headers'],
  body: Buffer,
  n: number,
): Promise<void> {
  client.macro('M', { i: `Q${n}` });
  await client.mail('<alice@example.org>', ['SIZE=1234']);
  await client.rcpt('<bob@example.net>');
  for (const h of headers) await client.header(h.name, h.value);
  await client.endOfHeaders();
  await client.body(body);
  const eom = await client.endOfMessage();
  if (eom.modifications.length !== 1 || eom.reply.type !== 'continue') throw new Error('unexpected end-of-message result');
}

async function open(spec: SocketSpec): Promise<MilterClient> {
  const client = await MilterClient.open(spec);
  client.macro('C', { j: 'mx.example.org' });
  await client.connect({ hostname: 'client.example.org', family: 'inet', address: '192.0.2.1', port: 25000 });
  await client.helo('client.example.org');
  return client;
}

interface Result {
  scenario: string;
  size: string;
  count: number;
  seconds: number;
}

async function measure(scenario: string, size: string, run: (n: number, worker: number) => Promise<void>, parallel = 1): Promise<Result> {
  const deadline = performance.now() + SECONDS * 1000;
  let count = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async (_, worker) => {
      while (performance.now() < deadline) {
        count += 1;
        await run(count, worker);
      }
    }),
  );
  return { scenario, size, count, seconds: (performance.now() - start) / 1000 };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'inkan-bench-'));
  const server = createMilterServer({
    actions: ActionFlags.AddHeaders,
    protocol: ProtocolFlags.HeaderLeadingSpace | ProtocolFlags.NoReplyHeader,
    handler: () => {
      let hash = createHash('sha256');
      return {
        mail() {
          hash = createHash('sha256');
        },
        header(name, value) {
          hash.update(name).update(value);
        },
        endOfHeaders() {},
        body(chunk) {
          hash.update(chunk);
        },
        endOfMessage(m) {
          m.addHeader('X-Bench', ` ${hash.digest('base64')}`);
          return 'continue';
        },
      };
    },
  });
  const listener = await server.listen({ kind: 'unix', path: join(dir, 'bench.sock') });
  const spec = listener.spec;
  const results: Result[] = [];
  try {
    for (const [label, size] of [
      ['4 KiB', 4 * 1024],
      ['1 MiB', 1024 * 1024],
    ] as const) {
      const { headers, body } = splitMessage(makeMessage(size));
      // warm-up
      for (let i = 0; i < 20; i++) {
        const c = await open(spec);
        await transaction(c, headers, body, i);
        await c.quit();
      }
      results.push(
        await measure('new connection per message', label, async (n) => {
          const c = await open(spec);
          await transaction(c, headers, body, n);
          await c.quit();
        }),
      );
      const shared = await open(spec);
      results.push(await measure('one connection, many messages', label, (n) => transaction(shared, headers, body, n)));
      await shared.quit();
      const pool = await Promise.all(Array.from({ length: 8 }, () => open(spec)));
      results.push(
        await measure('8 connections in parallel', label, (n, worker) => transaction(pool[worker] as MilterClient, headers, body, n), 8),
      );
      await Promise.all(pool.map((c) => c.quit()));
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`@inkan/milter-protocol benchmark: Node ${process.version}, ${cpu}, ${SECONDS} s per scenario, unix socket`);
  console.log('full transaction: MAIL, RCPT, 7 headers (no reply), EOH, body, EOM with one added header');
  console.log('');
  console.log(`${'message'.padEnd(8)} ${'scenario'.padEnd(32)} ${'messages'.padStart(9)} ${'msg/s'.padStart(9)} ${'MB/s'.padStart(8)}`);
  for (const r of results) {
    const rate = r.count / r.seconds;
    const bytes = r.size === '4 KiB' ? 4096 : 1024 * 1024;
    console.log(
      `${r.size.padEnd(8)} ${r.scenario.padEnd(32)} ${String(r.count).padStart(9)} ${rate.toFixed(0).padStart(9)} ${((rate * bytes) / 1e6).toFixed(1).padStart(8)}`,
    );
  }
}

await main();
