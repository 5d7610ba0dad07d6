/**
 * Operations under hostile load, against a real inkan-milterd: a client hammering /metrics,
 * a log reader that stops reading, syslog that is not there (or goes away), and signing keys
 * that others could replace (owner, directories, symlinks).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { get, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeKeys, runProgram, tempDir, type TestKeys, waitFor } from '@inkan/testbed';
import { insertedSignatures, type MilterdProcess, rssKiB, startMilterd, timedTransaction } from './helpers.js';

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'inkan-milterd.js');

let keys: TestKeys;
let dir: string;
let counter = 0;

beforeAll(() => {
  keys = makeKeys();
  dir = tempDir('inkan-hostile-ops-');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function message(from = 'joe@example.org'): Buffer {
  counter++;
  return Buffer.from(`From: Joe <${from}>\r\nTo: suzie@example.net\r\nSubject: ops ${counter}\r\nMessage-ID: <ops.${counter}@example.org>\r\n\r\nBody ${counter}.\r\n`);
}

/** A signing configuration (ed25519: cheap to sign with) on a fresh port, plus `extra` lines. */
async function signingConf(name: string, extra: string[] = []): Promise<{ conf: string; port: number }> {
  const keyFile = join(dir, `${name}.private`);
  writeFileSync(keyFile, keys.ed25519.pem, { mode: 0o600 });
  const port = await freePort();
  const conf = join(dir, `${name}.conf`);
  writeFileSync(conf, [`Socket inet:${port}@127.0.0.1`, 'Domain example.org', 'Selector one', `KeyFile ${keyFile}`, ...extra, ''].join('\n'));
  return { conf, port };
}

/** One message from an internal client; the selectors of the signatures it got. */
async function sign(port: number, sender = 'joe@example.org'): Promise<string[]> {
  const tx = await timedTransaction(`inet:${port}@127.0.0.1`, message(sender), { client: { address: '127.0.0.1', hostname: 'localhost' }, sender });
  return insertedSignatures(tx.endOfMessage.modifications).map((f) => /\bs=([^;\s]+)/.exec(f)?.[1] ?? '');
}

/** One HTTP request on a fresh connection: status and body (bounded by 10 s). */
function httpRequest(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

function metricValue(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('/metrics under a scraping flood', () => {
  let milterd: MilterdProcess | undefined;
  afterAll(async () => {
    await milterd?.stop();
  });

  it('2,000 scrapes while messages are signed: every message signed, the text made at most once a second', async () => {
    const metricsPort = await freePort();
    const { conf, port } = await signingConf('metrics', [`MetricsListen 127.0.0.1:${metricsPort}`]);
    milterd = await startMilterd(['-x', conf]);
    const started = performance.now();
    const SCRAPES = 2000;
    let scraped = 0;
    let failed = 0;
    let next = 0;
    const scraper = async () => {
      while (next < SCRAPES) {
        next++;
        try {
          const r = await httpRequest(metricsPort, '/metrics');
          if (r.status === 200 && r.body.includes('inkan_signatures_made_total')) scraped++;
          else failed++;
        } catch {
          failed++;
        }
      }
    };
    const MESSAGES = 40;
    const signer = async () => {
      const selectors: string[][] = [];
      for (let i = 0; i < MESSAGES; i++) selectors.push(await sign(port));
      return selectors;
    };
    const [selectors] = await Promise.all([signer(), scraper(), scraper(), scraper(), scraper()]);
    const seconds = (performance.now() - started) / 1000;
    expect(selectors).toEqual(Array.from({ length: MESSAGES }, () => ['one']));
    expect(scraped + failed).toBe(SCRAPES);
    expect(failed).toBe(0);
    const text = (await httpRequest(metricsPort, '/metrics')).body;
    expect(metricValue(text, 'inkan_signatures_made_total')).toBe(MESSAGES);
    const renders = metricValue(text, 'inkan_metrics_renders_total') ?? Number.NaN;
    // At most one a second (plus the first and the last one), however many scrapes came.
    expect(renders).toBeGreaterThanOrEqual(1);
    expect(renders).toBeLessThanOrEqual(Math.ceil(seconds) + 2);
    console.log(`metrics flood: ${SCRAPES} scrapes and ${MESSAGES} signed messages in ${seconds.toFixed(1)} s; the text was made ${renders} times`);
  });

  it('only GET /metrics, one request per connection; connections over the cap and silent ones are closed', async () => {
    const metricsPort = await freePort();
    const { conf } = await signingConf('metrics-limits', [`MetricsListen 127.0.0.1:${metricsPort}`]);
    const m = await startMilterd(['-x', conf]);
    try {
      expect((await httpRequest(metricsPort, '/metrics', 'POST')).status).toBe(405);
      expect((await httpRequest(metricsPort, '/other')).status).toBe(404);
      // Keep-alive is not offered: the server closes after each answer.
      const closedAfterAnswer = await new Promise<boolean>((resolve, reject) => {
        const req = get({ host: '127.0.0.1', port: metricsPort, path: '/metrics', headers: { connection: 'keep-alive' }, agent: false }, (res) => {
          res.resume();
          res.socket.once('close', () => resolve(true));
          expect(res.headers.connection).toBe('close');
        });
        req.on('error', reject);
        setTimeout(() => resolve(false), 10_000).unref();
      });
      expect(closedAfterAnswer).toBe(true);
      // Eight silent connections are taken; the ninth is closed at once; the silent ones after the request timeout (5 s).
      const open = (): Promise<{ socket: Socket; closed: Promise<void> }> =>
        new Promise((resolve, reject) => {
          const socket = connect({ host: '127.0.0.1', port: metricsPort });
          socket.on('error', () => {});
          const closed = new Promise<void>((r) => socket.once('close', () => r()));
          socket.once('connect', () => resolve({ socket, closed }));
          socket.once('error', reject);
        });
      const silent = [];
      for (let i = 0; i < 8; i++) silent.push(await open());
      await new Promise((r) => setTimeout(r, 200));
      const ninth = await open();
      const within = (p: Promise<void>, ms: number) => Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
      expect(await within(ninth.closed, 5000)).toBe(true);
      const silentClosed = await Promise.all(silent.map((s) => within(s.closed, 15_000)));
      expect(silentClosed).toEqual(silent.map(() => true));
      // And scraping works again.
      expect((await httpRequest(metricsPort, '/metrics')).status).toBe(200);
    } finally {
      await m.stop();
    }
  });
});
