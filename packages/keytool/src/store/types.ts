import type { StoreLocation } from './location.js';

/** One KeyTable row as the store holds it; nothing here has been checked yet. */
export interface StoredKey {
  /** The key name that SigningTable entries refer to (inkan-keytool: SELECTOR._domainkey.DOMAIN). */
  name: string;
  domain: string | null;
  selector: string | null;
  /** The private key (PEM). Absent when not asked for; null when the row has none (retired). */
  privateKey?: string | null;
  /** The TXT data published at SELECTOR._domainkey.DOMAIN (the public half). */
  record: string | null;
  /** ISO 8601. */
  createdAt: string | null;
  /** ISO 8601; set once the key is retired (its private half is then gone). */
  retiredAt: string | null;
  /** Where the row is, for log lines: "dkim_keys name=..." or "inkan:keys ...". */
  where: string;
}

/** One SigningTable entry: a sender pattern and the key names that sign its mail. */
export interface StoredSigning {
  pattern: string;
  keyNames: string[];
  where: string;
}

/** A row the store layer could not even read (for example bad JSON in a Redis hash). */
export interface StoreProblem {
  where: string;
  message: string;
}

/** The tables as they were at one moment (read in one transaction). */
export interface StoreSnapshot {
  keys: StoredKey[];
  signing: StoredSigning[];
  /** InternalHosts entries, when asked for. */
  hosts?: string[];
  problems: StoreProblem[];
}

export interface SnapshotOptions {
  /** Read the private keys too (default true). Accounts without that right list without them. */
  privateKeys?: boolean;
  /** Read the InternalHosts table too (default false). */
  hosts?: boolean;
}

/** A key to add to the store. */
export interface NewStoredKey {
  name: string;
  domain: string;
  selector: string;
  privateKey: string;
  record: string;
}

/** Timeouts and hooks for the connection(s) a store keeps. */
export interface StoreClientOptions {
  /** Give up connecting after this long (ms, default 5000). */
  connectTimeoutMs?: number;
  /** Give up on a query after this long (ms, default 10000). */
  queryTimeoutMs?: number;
  /** Connection-level errors that happen between queries (the next query reconnects). */
  onError?: (error: Error) => void;
  /** Name shown in the server's client list (pg_stat_activity, CLIENT LIST). */
  clientName?: string;
}

/** Shared key and signing tables in PostgreSQL or Redis. */
export interface KeyStore {
  readonly location: StoreLocation;
  /** Create the tables (PostgreSQL; Redis needs nothing). */
  init(): Promise<void>;
  /** Every table at one moment, read in one transaction. */
  snapshot(options?: SnapshotOptions): Promise<StoreSnapshot>;
  /** Add a key; refuses a name, or a domain and selector, that is already there. */
  addKey(key: NewStoredKey): Promise<void>;
  /** Set the keys of a SigningTable pattern (replacing what it had). */
  setSigning(pattern: string, keyNames: string[]): Promise<void>;
  /** Remove a SigningTable pattern; false if it was not there. */
  removeSigning(pattern: string): Promise<boolean>;
  /** In one transaction, make every SigningTable entry that uses a key in `from` use `to` instead. Returns the patterns changed. */
  repoint(from: string[], to: string): Promise<string[]>;
  /** Erase a key's private half and mark it retired (the row stays, to show what to revoke in DNS). */
  retireKey(name: string): Promise<void>;
  /** Replace the InternalHosts list. */
  setHosts(hosts: string[]): Promise<void>;
  close(): Promise<void>;
}

/** What a store watcher tells whoever holds the tables in memory. */
export interface WatchEvents {
  /** The store says something changed (a NOTIFY or a pub/sub message); `what` is its payload. */
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

/** Options of a watcher's connection. */
export interface WatchOptions {
  /** Give up connecting after this long (ms, default 5000); it then retries with backoff. */
  connectTimeoutMs?: number;
  /** Name shown in the server's client list (default "inkan-milterd listen" / "inkan-milterd-watch"). */
  clientName?: string;
}
