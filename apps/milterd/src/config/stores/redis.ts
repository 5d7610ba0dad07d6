import { type StoreLocation, redisOptions } from '@inkan/keytool/store';
import { Redis } from 'ioredis';
import type { StoreWatcher, WatchEvents } from './watcher.js';

/**
 * SUBSCRIBE to PREFIXchanged, where inkan-keytool publishes every change, on a connection
 * of its own. ioredis reconnects it with backoff (0.5 s doubling up to retry=); each time it
 * is ready again the channel is subscribed anew and the tables are re-read.
 */
export class RedisWatcher implements StoreWatcher {
  private readonly redis: Redis;
  private closed = false;
  private up = false;

  constructor(
    location: StoreLocation,
    private readonly events: WatchEvents,
    options: { connectTimeoutMs?: number; clientName?: string } = {},
  ) {
    this.redis = new Redis(location.connection, {
      ...redisOptions(location, { reconnect: true, connectTimeoutMs: options.connectTimeoutMs ?? 5000, clientName: options.clientName ?? 'inkan-milterd-watch' }),
      autoResubscribe: false,
      maxRetriesPerRequest: null,
    });
    this.redis.on('error', (error: Error) => this.down(error));
    this.redis.on('close', () => this.down(new Error('the subscription connection closed')));
    this.redis.on('message', (channel: string, message: string) => {
      if (channel === location.channel) events.changed(message);
    });
    this.redis.on('ready', () => {
      this.redis.subscribe(location.channel).then(
        () => {
          if (this.closed) return;
          this.up = true;
          events.connected();
        },
        (error: Error) => this.down(error),
      );
    });
  }

  private down(error: Error): void {
    if (this.closed || !this.up) return;
    this.up = false;
    this.events.lost(error);
  }

  start(): void {
    this.redis.connect().catch(() => {
      // retried by ioredis (retryStrategy) until close()
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.redis.disconnect(false);
  }
}
