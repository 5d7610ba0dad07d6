import { Resolver } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { clip } from './tag-list.js';

export type KeyLookupErrorCode = 'NOTFOUND' | 'TEMPFAIL';

const MARK = Symbol.for('@inkan/dkim-core/KeyLookupError');

/**
 * A failed key lookup: NOTFOUND (NXDOMAIN, or no TXT record: the key does not
 * exist, a permanent error) or TEMPFAIL (timeout, SERVFAIL, REFUSED, no server).
 */
export class KeyLookupError extends Error {
  readonly code: KeyLookupErrorCode;
  /** A TEMPFAIL because no answer came in time (rather than a server that answered with a failure). */
  readonly timedOut: boolean;
  readonly [MARK] = true;

  constructor(code: KeyLookupErrorCode, message: string, options?: { cause?: unknown; timedOut?: boolean }) {
    super(message, options);
    this.name = 'KeyLookupError';
    this.code = code;
    this.timedOut = code === 'TEMPFAIL' && options?.timedOut === true;
  }

  static isInstance(value: unknown): value is KeyLookupError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARK] === true;
  }
}

/** Fetches the TXT records of a name: one string per record, its strings joined. */
export interface KeyResolver {
  lookup(name: string): Promise<string[]>;
}

export interface DnsKeyResolverOptions {
  /** Name servers as "host", "host:port", "[v6]:port" or OpenDKIM's "host@port". Default: the system's. */
  servers?: string[];
  /**
   * Milliseconds a whole lookup may take, every query included (default 5000): then it is a
   * TEMPFAIL. One answer is waited for at most 5 s (c-ares' own limit on Node.js 20).
   */
  timeout?: number;
  /**
   * Most queries one lookup sends (default: one per second of timeout, at most 30): the first
   * at once, the next ones spread over the timeout (at most one a second) while no answer has
   * come. Each query keeps listening for its answer; the first answer wins.
   */
  tries?: number;
  /**
   * Most queries of this resolver waiting for answers at once (default 256): above it a lookup
   * sends no more retries (its first query always goes).
   */
  maxQueriesInFlight?: number;
}

/** Convert OpenDKIM's "addr@port" to the "addr:port" / "[v6]:port" that node:dns wants. */
export function normalizeServer(server: string): string {
  const at = /^(.+)@(\d+)$/.exec(server.trim());
  if (!at) return server.trim();
  const host = at[1] as string;
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${at[2]}` : `${host}:${at[2]}`;
}

const NOT_FOUND_CODES = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME']);

/**
 * How many queries one c-ares channel starts. c-ares (1.34, Node.js 20) waits the channel's
 * timeout only until a server has answered three queries on that channel; from then on it
 * waits a few times the server's average answer time (about 1 s after fast answers), so an
 * answer that comes slowly after a run of fast ones would be lost. A channel whose third query
 * starts has seen at most two answers, so each channel serves three queries and is replaced.
 */
const QUERIES_PER_CHANNEL = 3;

/** Queries of one lookup are never closer together than this. */
const MIN_RETRY_INTERVAL_MS = 1000;

/** Most queries a lookup sends unless `tries` says otherwise. */
const MAX_DEFAULT_TRIES = 30;

interface Channel {
  resolver: Resolver;
  /** Which server (index into servers). */
  index: number;
  started: number;
  /** Queries waiting for answers, and how many of them belong to lookups that have ended. */
  pending: number;
  abandoned: number;
}

interface Query {
  channel: Channel;
  abandoned: boolean;
}

/**
 * Key lookups over DNS with node:dns (c-ares; it falls back to TCP for large answers). A lookup
 * has its own deadline (`timeout`) and its own retries: query k (k < tries) goes to server
 * k mod n at k * max(1 s, timeout / tries), every query keeps listening until its answer comes
 * or the lookup ends, the first answer wins (NXDOMAIN and "no TXT record" are answers: NOTFOUND),
 * a server that fails outright (SERVFAIL, REFUSED, unreachable) is passed over, and at the
 * deadline the lookup is a TEMPFAIL.
 */
export class DnsKeyResolver implements KeyResolver {
  private readonly servers: string[];
  private readonly channels: (Channel | undefined)[];
  private readonly timeout: number;
  private readonly tries: number;
  private readonly interval: number;
  private readonly maxInFlight: number;
  private inFlight = 0;

  constructor(options: DnsKeyResolverOptions = {}) {
    this.timeout = positive(options.timeout ?? 5000, 'timeout');
    this.tries = Math.max(
      1,
      Math.floor(positive(options.tries ?? Math.min(MAX_DEFAULT_TRIES, Math.ceil(this.timeout / MIN_RETRY_INTERVAL_MS)), 'tries')),
    );
    this.maxInFlight = Math.max(1, Math.floor(positive(options.maxQueriesInFlight ?? 256, 'maxQueriesInFlight')));
    this.interval = Math.max(MIN_RETRY_INTERVAL_MS, this.timeout / this.tries);
    const probe = new Resolver();
    if (options.servers && options.servers.length > 0) probe.setServers(options.servers.map(normalizeServer)); // throws on a bad address
    this.servers = probe.getServers();
    this.channels = this.servers.map(() => undefined);
  }

  /** Queries sent and not yet answered, timed out or cancelled. */
  get queriesInFlight(): number {
    return this.inFlight;
  }

  async lookup(name: string): Promise<string[]> {
    return (await this.lookupStrings(name)).map((strings) => strings.join(''));
  }

  /** The TXT records of a name as published: each record's character-strings, unjoined. */
  lookupStrings(name: string): Promise<string[][]> {
    return new Promise<string[][]>((resolve, reject) => {
      const serverCount = Math.max(1, this.servers.length);
      const failedServers = new Set<number>();
      let sent = 0;
      let outstanding = 0;
      let settled = false;
      let lastError: unknown;
      let tick: NodeJS.Timeout | undefined;
      const waiting = new Set<Query>();
      const settle = (end: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(tick);
        clearTimeout(deadline);
        // Queries still out are let go: a channel left with nothing else to wait for is cancelled.
        for (const q of waiting) {
          q.abandoned = true;
          q.channel.abandoned++;
        }
        const channels = new Set([...waiting].map((q) => q.channel));
        waiting.clear();
        for (const channel of channels) this.release(channel);
        end();
      };
      const fail = (error: unknown) => settle(() => reject(lookupError(name, error)));
      /** Nothing is left to wait for: no query out and no more to send. */
      const exhausted = () => outstanding === 0 && (sent >= this.tries || failedServers.size >= serverCount);
      const send = () => {
        if (settled || sent >= this.tries || failedServers.size >= serverCount) return;
        // The next server that has not failed outright in this lookup.
        let server = sent % serverCount;
        while (failedServers.has(server)) server = (server + 1) % serverCount;
        sent++;
        outstanding++;
        this.inFlight++;
        const query: Query = { channel: this.channel(server), abandoned: false };
        waiting.add(query);
        const finished = () => {
          waiting.delete(query);
          query.channel.pending--;
          if (query.abandoned) query.channel.abandoned--;
        };
        query.channel.resolver
          .resolveTxt(name)
          .then(
            (records) => {
              finished();
              settle(() => resolve(records));
            },
            (error: unknown) => {
              finished();
              if (settled) return;
              lastError = error;
              const code = (error as { code?: string }).code ?? '';
              if (NOT_FOUND_CODES.has(code)) return fail(error);
              // A server that answered with a failure (or cannot be reached) is passed over: the
              // next one is asked at once. A timeout just ends this query; the others go on.
              if (code !== 'ETIMEOUT' && !failedServers.has(server)) {
                failedServers.add(server);
                send();
              }
            },
          )
          .finally(() => {
            outstanding--;
            this.inFlight--;
            if (!settled && exhausted()) fail(lastError);
          });
      };
      const schedule = () => {
        tick = setTimeout(() => {
          if (this.inFlight < this.maxInFlight) send();
          if (sent < this.tries) schedule();
        }, this.interval);
      };
      const deadline = setTimeout(
        () =>
          settle(() =>
            reject(
              new KeyLookupError(
                'TEMPFAIL',
                `DNS lookup of ${name} timed out after ${this.timeout / 1000} s (${sent} ${sent === 1 ? 'query' : 'queries'})`,
                { timedOut: true },
              ),
            ),
          ),
        this.timeout,
      );
      send();
      if (!settled && this.tries > 1) schedule();
    });
  }

  /** The channel for a server, replaced once it has started QUERIES_PER_CHANNEL queries. */
  private channel(index: number): Channel {
    let channel = this.channels[index];
    if (!channel || channel.started >= QUERIES_PER_CHANNEL) {
      const resolver = new Resolver({ timeout: Math.min(Math.ceil(this.timeout), 2 ** 31 - 1), tries: 1 });
      const server = this.servers[index];
      if (server !== undefined) resolver.setServers([server]);
      channel = { resolver, index, started: 0, pending: 0, abandoned: 0 };
      this.channels[index] = channel;
    }
    channel.started++;
    channel.pending++;
    return channel;
  }

  /** Cancel a channel whose waiting queries all belong to lookups that have ended (no socket or timer is left behind). */
  private release(channel: Channel): void {
    if (channel.pending === 0 || channel.pending !== channel.abandoned) return;
    if (this.channels[channel.index] === channel) this.channels[channel.index] = undefined;
    channel.resolver.cancel();
  }
}

function positive(value: number, what: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${what} must be a positive number, not ${value}`);
  return value;
}

/** A node:dns failure as a KeyLookupError: NOTFOUND for "no such name / no TXT record", else TEMPFAIL. */
function lookupError(name: string, error: unknown): KeyLookupError {
  if (KeyLookupError.isInstance(error)) return error;
  const code = (error as { code?: string } | undefined)?.code ?? 'EUNKNOWN';
  if (NOT_FOUND_CODES.has(code)) return new KeyLookupError('NOTFOUND', `no TXT record at ${name} (${code})`, { cause: error });
  return new KeyLookupError('TEMPFAIL', `DNS lookup of ${name} failed (${code})`, { cause: error, timedOut: code === 'ETIMEOUT' });
}

function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/** Records held in memory: for tests and for callers who fetch keys their own way. */
export class MemoryKeyResolver implements KeyResolver {
  private readonly records = new Map<string, string[] | KeyLookupError>();

  constructor(records: Record<string, string | string[] | KeyLookupError> = {}) {
    for (const [name, value] of Object.entries(records)) this.set(name, value);
  }

  set(name: string, value: string | string[] | KeyLookupError): this {
    this.records.set(normalizeName(name), typeof value === 'string' ? [value] : value);
    return this;
  }

  delete(name: string): this {
    this.records.delete(normalizeName(name));
    return this;
  }

  async lookup(name: string): Promise<string[]> {
    const found = this.records.get(normalizeName(name));
    if (found === undefined) throw new KeyLookupError('NOTFOUND', `no key record for ${name}`);
    if (KeyLookupError.isInstance(found)) throw found;
    return [...found];
  }
}

/**
 * Parse a zone-style keys file, as OpenDKIM's test keys or a zone file excerpt:
 *   sel._domainkey.example.org  v=DKIM1; k=rsa; p=...
 *   sel._domainkey.example.org. IN TXT ( "v=DKIM1; k=rsa; " "p=..." )   ; comment
 * Quoted strings are joined; a parenthesized record may span lines; "#" and ";" start
 * comments outside quotes. Throws an error naming the line for what it cannot read.
 */
export function parseKeysFile(text: string, fileName = 'keys file'): Map<string, string[]> {
  const records = new Map<string, string[]>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let entry = stripComment(lines[i] as string);
    if (entry.trim() === '') continue;
    // A parenthesized record continues until its closing parenthesis.
    while (countOutsideQuotes(entry, '(') > countOutsideQuotes(entry, ')')) {
      i++;
      if (i >= lines.length) throw new Error(`${fileName}:${lineNo}: unclosed "("`);
      entry += ` ${stripComment(lines[i] as string)}`;
    }
    const m = /^\s*(\S+)\s+(.*)$/.exec(entry);
    if (!m) throw new Error(`${fileName}:${lineNo}: expected "name record", got "${clip(entry)}"`);
    let rest = (m[2] as string).trim();
    rest = rest.replace(/^(?:\d+\s+)?(?:IN\s+)?(?:\d+\s+)?TXT\s+/i, '');
    rest = rest.replace(/^\(\s*|\s*\)\s*$/g, '');
    let value: string;
    if (rest.startsWith('"')) {
      const strings = [...rest.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((s) => (s[1] as string).replace(/\\(.)/g, '$1'));
      if (strings.length === 0) throw new Error(`${fileName}:${lineNo}: unbalanced quotes`);
      value = strings.join('');
    } else {
      value = rest;
    }
    const name = normalizeName(m[1] as string);
    const list = records.get(name) ?? [];
    list.push(value);
    records.set(name, list);
  }
  return records;
}

/**
 * Drop a comment: "#" anywhere outside quotes; ";" (the zone-file comment) only where
 * it cannot be a tag separator, that is on lines written with quoted strings or at the
 * start of a line.
 */
function stripComment(line: string): string {
  const semicolonComments = line.includes('"') || /^\s*;/.test(line);
  let inQuote = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && inQuote) i++;
    else if (c === '"') inQuote = !inQuote;
    else if (!inQuote && (c === '#' || (c === ';' && semicolonComments))) return line.slice(0, i);
  }
  return line;
}

function countOutsideQuotes(text: string, ch: string): number {
  let n = 0;
  let inQuote = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && inQuote) i++;
    else if (c === '"') inQuote = !inQuote;
    else if (!inQuote && c === ch) n++;
  }
  return n;
}

/** Keys from a zone-style file (see parseKeysFile), for offline use and tests. */
export class FileKeyResolver extends MemoryKeyResolver {
  static async fromFile(path: string): Promise<FileKeyResolver> {
    return FileKeyResolver.fromText(await readFile(path, 'latin1'), path);
  }

  static fromText(text: string, fileName?: string): FileKeyResolver {
    const resolver = new FileKeyResolver();
    for (const [name, values] of parseKeysFile(text, fileName)) resolver.set(name, values);
    return resolver;
  }
}

export interface CachingKeyResolverOptions {
  /** Most names kept (least recently used go first). Default 1000. */
  maxEntries?: number;
  /** Seconds a found record is kept. Default 300. */
  ttlSeconds?: number;
  /** Seconds a NOTFOUND answer is kept. Default 60. Temporary failures are never kept. */
  negativeTtlSeconds?: number;
  /** Current time in milliseconds (default Date.now). */
  now?: () => number;
}

/**
 * Keeps answers of another resolver for a while (bounded LRU, with negative caching of
 * NOTFOUND), and asks only once for a name that several messages need at the same time.
 * node:dns does not report TTLs for TXT records, so the lifetime is a setting.
 */
export class CachingKeyResolver implements KeyResolver {
  private readonly inner: KeyResolver;
  private readonly entries = new Map<string, { expires: number; answer: string[] | KeyLookupError }>();
  private readonly inFlight = new Map<string, Promise<string[]>>();
  private readonly maxEntries: number;
  private readonly ttl: number;
  private readonly negativeTtl: number;
  private readonly now: () => number;

  constructor(inner: KeyResolver, options: CachingKeyResolverOptions = {}) {
    this.inner = inner;
    this.maxEntries = options.maxEntries ?? 1000;
    this.ttl = (options.ttlSeconds ?? 300) * 1000;
    this.negativeTtl = (options.negativeTtlSeconds ?? 60) * 1000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  async lookup(name: string): Promise<string[]> {
    const key = normalizeName(name);
    const hit = this.entries.get(key);
    if (hit && hit.expires > this.now()) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      if (KeyLookupError.isInstance(hit.answer)) throw hit.answer;
      return [...hit.answer];
    }
    if (hit) this.entries.delete(key);
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.fetch(key, name);
      this.inFlight.set(key, pending);
    }
    return [...(await pending)];
  }

  private async fetch(key: string, name: string): Promise<string[]> {
    try {
      const answer = await this.inner.lookup(name);
      this.remember(key, answer, this.ttl);
      return answer;
    } catch (error) {
      if (KeyLookupError.isInstance(error) && error.code === 'NOTFOUND') this.remember(key, error, this.negativeTtl);
      throw error;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private remember(key: string, answer: string[] | KeyLookupError, ttl: number): void {
    if (ttl <= 0) return;
    this.entries.set(key, { expires: this.now() + ttl, answer });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }
}

/** A key record fetched and parsed, or the verification result its absence calls for. */
export type KeyFetchResult<T> =
  | { ok: true; record: T }
  | { ok: false; result: 'permerror' | 'temperror'; code: 'key-not-found' | 'dns-error' | 'dns-timeout' | 'key-syntax'; reason: string };

/**
 * Look up a key name and parse its records with `parse`, taking the first record that
 * parses: NOTFOUND (or no record) is a permerror "key-not-found", any other lookup failure a
 * temperror ("dns-timeout" when no answer came in time, else "dns-error"), records that do not
 * parse a permerror "key-syntax" with the first parser error. Never throws.
 */
export async function fetchKeyRecord<T>(
  resolver: KeyResolver,
  name: string,
  parse: (text: string) => { ok: true; record: T } | { ok: false; error: string },
): Promise<KeyFetchResult<T>> {
  let records: string[];
  try {
    records = await resolver.lookup(name);
  } catch (error) {
    if (KeyLookupError.isInstance(error) && error.code === 'NOTFOUND') return notFound(name);
    const why = error instanceof Error ? error.message : String(error);
    const code = KeyLookupError.isInstance(error) && error.timedOut ? 'dns-timeout' : 'dns-error';
    return { ok: false, result: 'temperror', code, reason: `key lookup failed: ${why}` };
  }
  if (records.length === 0) return notFound(name);
  let firstError = '';
  for (const text of records) {
    const parsed = parse(text);
    if (parsed.ok) return { ok: true, record: parsed.record };
    firstError ||= parsed.error;
  }
  return { ok: false, result: 'permerror', code: 'key-syntax', reason: firstError };
}

function notFound(name: string): KeyFetchResult<never> {
  return { ok: false, result: 'permerror', code: 'key-not-found', reason: `no key record at ${name}` };
}
