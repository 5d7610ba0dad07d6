import { backoffMs, type StoreLocation } from '@inkan/keytool/store/location';
import { Client, escapeIdentifier } from 'pg';
import type { StoreWatcher, WatchEvents } from './watcher.js';

/**
 * LISTEN for the NOTIFY that the tables' triggers send on every change (see the migration),
 * on a connection of its own. When the connection goes, it comes back with backoff (0.5 s
 * doubling up to the location's retry=), and says so, so that the tables are re-read.
 */
export class PostgresWatcher implements StoreWatcher {
  private client: Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private closed = false;

  constructor(
    private readonly location: StoreLocation,
    private readonly events: WatchEvents,
    private readonly options: { connectTimeoutMs?: number; clientName?: string } = {},
  ) {}

  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new Client({
      connectionString: this.location.connection,
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 5000,
      keepAlive: true,
      application_name: this.options.clientName ?? 'inkan-milterd listen',
    });
    this.client = client;
    let gone = false;
    const lost = (error: Error) => {
      if (gone) return;
      gone = true;
      if (this.client === client) this.client = undefined;
      client.removeAllListeners('notification');
      client.end().catch(() => {});
      if (this.closed) return;
      this.events.lost(error);
      this.attempt++;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.connect();
      }, backoffMs(this.attempt, this.location.retrySeconds));
      this.timer.unref();
    };
    client.on('error', (error) => lost(error));
    client.on('end', () => lost(new Error('the LISTEN connection closed')));
    client.on('notification', (n) => {
      if (n.channel === this.location.channel) this.events.changed(n.payload ?? 'notify');
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${escapeIdentifier(this.location.channel)}`);
    } catch (error) {
      lost(error as Error);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.attempt = 0;
    this.events.connected();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners('notification');
      await client.end().catch(() => {});
    }
  }
}
