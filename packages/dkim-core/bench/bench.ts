/**
 * dkim-core benchmark (not a test): sign and verify messages of 2 KiB, 100 KiB and
 * 10 MiB, beside the ceilings measured in the same run (node:crypto RSA-2048 sign/s
 * with a parsed KeyObject, SHA-256 MB/s), plus peak RSS of a streamed 100 MiB message.
 *   pnpm bench            full run
 *   pnpm bench --quick    smoke run (CI): short timings, a 10 MiB streamed message
 */
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemoryKeyResolver, signMessage, verifyMessage } from '../src/index.js';
import { message } from './corpus.js';
import { rate as measure } from './measure.js';

const quick = process.argv.includes('--quick');
const minMs = quick ? 150 : 1500;

const rate = (fn: () => unknown, maxIterations?: number) => measure(fn, minMs, maxIterations);

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const resolver = new MemoryKeyResolver({
  'rsa._domainkey.example.org': `v=DKIM1; p=${rsa.publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`,
  'ed._domainkey.example.org': `v=DKIM1; k=ed25519; p=${ed.publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64')}`,
});

const rows: string[][] = [];
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

// Ceilings, same run.
const data = Buffer.alloc(2048, 'x');
const rsaSignRate = await rate(() => sign('sha256', data, rsa.privateKey));
const big = message(10 * 1024 * 1024);
const shaRate = (await rate(() => createHash('sha256').update(big).digest(), 200)) * (big.length / 1e6);
console.log(`ceilings: node:crypto RSA-2048 sign ${fmt(rsaSignRate)}/s (KeyObject), SHA-256 ${fmt(shaRate)} MB/s`);

for (const [label, size] of [
  ['2 KiB', 2 * 1024],
  ['100 KiB', 100 * 1024],
  ['10 MiB', 10 * 1024 * 1024],
] as const) {
  const msg = message(size);
  for (const [alg, selector, key] of [
    ['rsa-sha256', 'rsa', rsa.privateKey],
    ['ed25519-sha256', 'ed', ed.privateKey],
  ] as const) {
    for (const canonicalization of ['relaxed/relaxed', 'simple/simple']) {
      if (size > 100 * 1024 && alg === 'ed25519-sha256' && quick) continue;
      const opts = { domain: 'example.org', selector, privateKey: key, canonicalization };
      const signed = Buffer.concat([Buffer.from(await signMessage(msg, opts)), msg]);
      const check = await verifyMessage(signed, { resolver });
      if (check[0]?.result !== 'pass') throw new Error(`benchmark message did not verify: ${check[0]?.reason}`);
      const signRate = await rate(() => signMessage(msg, opts));
      const verifyRate = await rate(() => verifyMessage(signed, { resolver }));
      rows.push([
        label,
        alg,
        canonicalization,
        fmt(signRate),
        fmt((signRate * size) / 1e6, 1),
        fmt(verifyRate),
        fmt((verifyRate * size) / 1e6, 1),
      ]);
    }
  }
}

const header = ['message', 'algorithm', 'c=', 'sign msg/s', 'sign MB/s', 'verify msg/s', 'verify MB/s'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
const line = (r: string[]) => r.map((c, i) => (i < 3 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
console.log(line(header));
for (const r of rows) console.log(line(r));
console.log(`peak RSS of this process: ${fmt(process.resourceUsage().maxRSS / 1024)} MiB (holds the 10 MiB test messages)`);

const here = dirname(fileURLToPath(import.meta.url));
const mib = quick ? 10 : 100;
const out = execFileSync(process.execPath, ['--import', 'tsx', join(here, 'stream-rss.ts'), String(mib)], { encoding: 'utf8' });
const r = JSON.parse(out) as { result: string; peakRssMiB: number; baselineRssMiB: number; signMBps: number; verifyMBps: number };
console.log(
  `streamed ${mib} MiB message, RSA-2048 relaxed: sign ${fmt(r.signMBps)} MB/s, verify ${fmt(r.verifyMBps)} MB/s, ` +
    `result ${r.result}, peak RSS ${fmt(r.peakRssMiB, 1)} MiB (process baseline ${fmt(r.baselineRssMiB, 1)} MiB)`,
);
if (r.result !== 'pass') process.exitCode = 1;
