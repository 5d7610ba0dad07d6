import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one milterd. */
export class Metrics {
  readonly registry = new Registry();
  readonly signed = new Counter({ name: 'inkan_signatures_made_total', help: 'DKIM signatures added', registers: [this.registry] });
  readonly verified = new Counter({
    name: 'inkan_signatures_verified_total',
    help: 'Signatures checked, by method and result',
    labelNames: ['method', 'result'] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({ name: 'inkan_internal_errors_total', help: 'Messages that hit an internal error', registers: [this.registry] });
  readonly lookupSeconds = new Histogram({
    name: 'inkan_key_lookup_seconds',
    help: 'DNS key lookup latency',
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 5],
    registers: [this.registry],
  });
  readonly connections = new Gauge({ name: 'inkan_milter_connections', help: 'Open MTA connections', registers: [this.registry] });
  readonly held = new Counter({
    name: 'inkan_messages_held_total',
    help: 'Messages that should be signed but were tempfailed: no usable key (tables not loaded, or a bad row)',
    registers: [this.registry],
  });
  readonly storeUp = new Gauge({
    name: 'inkan_store_up',
    help: 'Whether the shared store of KeyTable/SigningTable answered the last read (1) or not (0)',
    labelNames: ['store'] as const,
    registers: [this.registry],
  });
  readonly storeLoaded = new Gauge({
    name: 'inkan_store_tables_loaded_timestamp_seconds',
    help: 'When the tables in use were read from the shared store (0: never)',
    labelNames: ['store'] as const,
    registers: [this.registry],
  });
  readonly storeKeys = new Gauge({ name: 'inkan_store_keys', help: 'Usable keys in the tables in use', labelNames: ['store'] as const, registers: [this.registry] });
  readonly storeBadRows = new Gauge({
    name: 'inkan_store_bad_rows',
    help: 'Rows of the shared store left out of the tables in use (see the log)',
    labelNames: ['store'] as const,
    registers: [this.registry],
  });
  readonly storeReloads = new Counter({
    name: 'inkan_store_reloads_total',
    help: 'Reads of the shared store, by result (changed, unchanged, failed, refused)',
    labelNames: ['store', 'result'] as const,
    registers: [this.registry],
  });
  private server: Server | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'inkan_' });
  }

  /** Serve /metrics on a loopback host:port only. */
  async listen(hostPort: string): Promise<string> {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(hostPort);
    const host = m?.[1] ?? '';
    if (!m || !isIP(host)) throw new Error(`MetricsListen takes address:port, not "${hostPort}"`);
    if (!(host.startsWith('127.') || host === '::1')) throw new Error(`MetricsListen must be a loopback address (127.0.0.0/8 or ::1), not ${host}`);
    this.server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(m[2]), host, () => resolve());
    });
    const address = server.address();
    return typeof address === 'object' && address ? `${address.address}:${address.port}` : hostPort;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
