import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { parseMetricsListen } from './loopback.js';

/** /metrics text is made at most this often; scrapes in between get the same text. */
export const METRICS_RENDER_INTERVAL_MS = 1000;
/** Scrapers connected at once; more are closed as they connect. */
export const MAX_METRICS_CONNECTIONS = 8;
/** Time a scraper has to send its request (and for the connection to go quiet). */
export const METRICS_REQUEST_TIMEOUT_MS = 5000;

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
  readonly errors = new Counter({
    name: 'inkan_internal_errors_total',
    help: 'Messages that hit an internal error',
    registers: [this.registry],
  });
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
  readonly storeKeys = new Gauge({
    name: 'inkan_store_keys',
    help: 'Usable keys in the tables in use',
    labelNames: ['store'] as const,
    registers: [this.registry],
  });
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
  readonly renders = new Counter({
    name: 'inkan_metrics_renders_total',
    help: 'Times the /metrics text was made (at most once a second, however often it is scraped)',
    registers: [this.registry],
  });
  private server: Server | undefined;
  private rendered: { text: string; at: number } | undefined;
  private rendering: Promise<string> | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'inkan_' });
  }

  /** Serve /metrics on a loopback host:port only. */
  async listen(hostPort: string): Promise<string> {
    const { host, port } = parseMetricsListen(hostPort);
    // A scraper gets one small GET answered, then the connection closes: no keep-alive, no
    // request bodies, a few connections at a time, and a bounded time to send the request.
    this.server = createServer(
      {
        maxHeaderSize: 8192,
        headersTimeout: METRICS_REQUEST_TIMEOUT_MS,
        requestTimeout: METRICS_REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: 1000,
      },
      (req, res) => this.serve(req, res),
    );
    const server = this.server;
    server.maxConnections = MAX_METRICS_CONNECTIONS;
    server.maxRequestsPerSocket = 1;
    server.keepAliveTimeout = 1;
    server.setTimeout(METRICS_REQUEST_TIMEOUT_MS, (socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address();
    return typeof address === 'object' && address ? `${address.address}:${address.port}` : hostPort;
  }

  /** One scrape: GET (or HEAD) /metrics only; the text made at most once a second. */
  private serve(req: IncomingMessage, res: ServerResponse): void {
    res.shouldKeepAlive = false;
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== '/metrics') {
      res.writeHead(404, { connection: 'close' }).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', connection: 'close' }).end();
      return;
    }
    this.text().then(
      (text) =>
        res
          .writeHead(200, { 'content-type': this.registry.contentType, connection: 'close' })
          .end(req.method === 'HEAD' ? undefined : text),
      () => res.writeHead(500, { connection: 'close' }).end(),
    );
  }

  /**
   * The exposition text, made at most once per METRICS_RENDER_INTERVAL_MS: making it walks
   * every metric on the main thread, so a client scraping in a loop must not make it each time.
   */
  private text(): Promise<string> {
    if (this.rendered && performance.now() - this.rendered.at < METRICS_RENDER_INTERVAL_MS) return Promise.resolve(this.rendered.text);
    if (!this.rendering) {
      this.renders.inc();
      this.rendering = this.registry
        .metrics()
        .then((text) => {
          this.rendered = { text, at: performance.now() };
          return text;
        })
        .finally(() => {
          this.rendering = undefined;
        });
    }
    return this.rendering;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    }
  }
}
