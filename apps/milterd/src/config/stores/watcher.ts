/** What a store watcher tells the tables that depend on it. */
export interface WatchEvents {
  /** The store says something changed (a NOTIFY or a pub/sub message). */
  changed(what: string): void;
  /** The watcher (re)connected: changes made while it was away were not seen, so re-read. */
  connected(): void;
  /** The watcher lost its connection; it reconnects by itself with backoff. */
  lost(error: Error): void;
}

/** Listens for changes to the shared tables on a connection of its own. */
export interface StoreWatcher {
  start(): void;
  close(): Promise<void>;
}
