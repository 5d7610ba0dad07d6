/**
 * Hostile metrics (issue #16 item 9): a local client scraping /metrics in a tight loop while a
 * normal sender signs through a real inkan-milterd. Signing throughput with and without the
 * scrapers, how many scrapes were answered, and how often the text was made
 * (inkan_metrics_renders_total: at most once a second now; b5f5af8 made it for every scrape,
 * which costs what the "render" row says, on the main thread, each time).
 */
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { runTransaction } from '@inkan/milter-protocol';
import { cpuSeconds, freePort, type MilterdProcess, startMilterdOnPort } from '@inkan/testbed';
import { Metrics } from '../../../apps/milterd/dist/metrics.js';
import { rate } from '../../../packages/dkim-core/bench/measure.js';

export interface HostileMetricsOptions {
  quick: boolean;
  /** A scratch directory (configuration files). */
  dir: string;
  /** An RSA-2048 key file (mode 0600) in `dir`. */
  keyFile: string;
  table: (title: string, head: string[], rows: string[][]) => void;
  fmt: (n: number, digits?: number) => string;
}

/**
 * Four loops of GET /metrics on fresh connections for the given ms; prints how many were
 * answered. Port 0: the same client against a server of its own (a fixed text, as cheap to
 * serve as a cached one): the control, what the scraping costs the machine alone.
 */
const SCRAPER = `
import { createServer, request } from 'node:http';
let [port, ms] = process.argv.slice(-2).map(Number);
let server;
if (port === 0) {
  const text = 'x'.repeat(20000);
  server = createServer((req, res) => res.writeHead(200, { connection: 'close' }).end(text));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  port = server.address().port;
}
const until = performance.now() + ms;
let answered = 0;
const once = () => new Promise((resolve) => {
  const req = request({ host: '127.0.0.1', port, path: '/metrics', agent: false, timeout: 10000 }, (res) => {
    res.resume();
    res.on('end', () => { if (res.statusCode === 200) answered++; resolve(); });
    res.on('error', resolve);
  });
  req.on('timeout', () => req.destroy());
  req.on('error', resolve);
  req.end();
});
const loop = async () => { while (performance.now() < until) await once(); };
await Promise.all([loop(), loop(), loop(), loop()]);
server?.close();
console.log(answered);
`;

/** Run the scrapers for `seconds` against `port` (0: their own server); how many scrapes were answered. */
async function scrapeFor(port: number, seconds: number): Promise<number> {
  const scrapers = spawn(process.execPath, ['--input-type=module', '-e', SCRAPER, String(port), String(seconds * 1000)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  scrapers.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise<void>((r) => scrapers.once('exit', () => r()));
  return Number(out.trim());
}

/** One GET on a fresh connection; the body (empty on any error). */
function scrape(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve(body));
      res.on('error', () => resolve(''));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(''));
    req.end();
  });
}

function message(n: number): Buffer {
  return Buffer.from(
    `From: Joe <joe@example.org>\r\nTo: suzie@example.net\r\nSubject: metrics ${n}\r\nMessage-ID: <metrics.${n}@example.org>\r\n\r\nA short message, ${n}.\r\n`,
  );
}

/** Messages signed per second by two senders until `until`; throws on any unsigned message. */
async function signing(spec: string, until: number): Promise<number> {
  let done = 0;
  const started = performance.now();
  const sender = async () => {
    while (performance.now() < until) {
      const r = await runTransaction(
        spec,
        { sender: 'joe@example.org', recipients: ['suzie@example.net'], message: message(done), client: { address: '127.0.0.1' } },
        { timeoutMs: 60_000 },
      );
      if (!r.endOfMessage?.modifications.some((m) => m.type === 'insertHeader' && m.name === 'DKIM-Signature'))
        throw new Error('hostile-metrics: a message was not signed');
      done++;
    }
  };
  await Promise.all([sender(), sender()]);
  return done / ((performance.now() - started) / 1000);
}

/** CPU milliseconds a process has used so far (user + system). */
const cpuMsOf = (pid: number) => cpuSeconds(pid) * 1000;

export async function hostileMetrics(o: HostileMetricsOptions): Promise<void> {
  const seconds = o.quick ? 2 : 8;
  // What one render costs (the registry milterd has), as b5f5af8 paid for every scrape.
  const registry = new Metrics();
  const renderMs = 1000 / (await rate(() => registry.registry.metrics(), o.quick ? 100 : 1000, 20_000));
  await registry.close();

  const metricsPort = await freePort();
  const lines = ['Domain example.org', 'Selector bench', `KeyFile ${o.keyFile}`, `MetricsListen 127.0.0.1:${metricsPort}`, 'AllowRoot yes'];
  let child: MilterdProcess | undefined;
  try {
    const started = await startMilterdOnPort(join(o.dir, 'milterd-hostile-metrics.conf'), lines);
    child = started.milterd;
    const spec = started.socket;
    await signing(spec, performance.now() + 500); // warm-up
    const pid = child.pid as number;
    const cpuQuietStart = cpuMsOf(pid);
    const quiet = await signing(spec, performance.now() + seconds * 1000);
    const cpuQuiet = (cpuMsOf(pid) - cpuQuietStart) / seconds;
    const rendersBefore = Number(/^inkan_metrics_renders_total (\S+)$/m.exec(await scrape(metricsPort))?.[1] ?? Number.NaN);
    // Control: the same scraping client against a server of its own (the machine's share only).
    const [control] = await Promise.all([signing(spec, performance.now() + seconds * 1000), scrapeFor(0, seconds)]);
    // The scrapers run in a process of their own, so they do not slow this one's senders.
    const cpuFloodStart = cpuMsOf(pid);
    const [flooded, scrapes] = await Promise.all([signing(spec, performance.now() + seconds * 1000), scrapeFor(metricsPort, seconds)]);
    const cpuFlood = (cpuMsOf(pid) - cpuFloodStart) / seconds;
    // milterd's CPU per scrape: what it spent beyond signing (at the rate it signed meanwhile).
    const perScrapeMs = (cpuFlood - cpuQuiet * (flooded / quiet)) / (scrapes / seconds);
    const renders = Number(/^inkan_metrics_renders_total (\S+)$/m.exec(await scrape(metricsPort))?.[1] ?? Number.NaN) - rendersBefore;
    const perSecond = scrapes / seconds;
    o.table(
      `hostile metrics: 4 clients scraping /metrics in a loop beside 2 senders signing (RSA-2048), ${seconds} s each`,
      ['what', 'value'],
      [
        ['signed/s, nobody scraping', o.fmt(quiet, 0)],
        ['signed/s, the same client scraping a server of its own (control)', `${o.fmt(control, 0)} (${o.fmt(control / quiet, 2)}×)`],
        ['signed/s, while /metrics is scraped', `${o.fmt(flooded, 0)} (${o.fmt(flooded / quiet, 2)}×)`],
        ['scrapes answered/s', o.fmt(perSecond, 0)],
        ['texts made (inkan_metrics_renders_total)', `${o.fmt(renders, 0)} (b5f5af8: one per scrape, ${o.fmt(scrapes, 0)})`],
        ['milterd CPU ms/s, nobody scraping / while scraped', `${o.fmt(cpuQuiet, 0)} / ${o.fmt(cpuFlood, 0)}`],
        ['milterd CPU ms per scrape now (est.)', o.fmt(perScrapeMs, 2)],
        ['one render of the registry, ms (b5f5af8: per scrape)', o.fmt(renderMs, 2)],
        ['main-thread ms/s b5f5af8 spent rendering at this scrape rate', o.fmt(perSecond * renderMs, 0)],
      ],
    );
  } finally {
    await child?.stop();
  }
}
