/**
 * Child process of the benchmark: signs, then verifies, a message of N MiB that is
 * generated as a stream and never held whole; prints the peak RSS as JSON.
 */
import { generateKeyPairSync } from 'node:crypto';
import { MemoryKeyResolver, signMessage, verifyMessage } from '../src/index.js';
import { streamMessage } from './corpus.js';

const mib = Number(process.argv[2] ?? 100);
const size = mib * 1024 * 1024;
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const p = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
const resolver = new MemoryKeyResolver({ 'bench._domainkey.example.org': `v=DKIM1; p=${p}` });
const baseline = process.memoryUsage().rss;
const t0 = performance.now();
const sig = await signMessage(streamMessage(size), { domain: 'example.org', selector: 'bench', privateKey });
const t1 = performance.now();
const [result] = await verifyMessage(streamMessage(size, Buffer.from(sig, 'latin1')), { resolver });
const t2 = performance.now();
console.log(
  JSON.stringify({
    mib,
    result: result?.result,
    baselineRssMiB: baseline / 2 ** 20,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    signMBps: size / 1e6 / ((t1 - t0) / 1000),
    verifyMBps: size / 1e6 / ((t2 - t1) / 1000),
  }),
);
