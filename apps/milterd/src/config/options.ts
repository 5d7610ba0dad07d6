import { DEFAULT_OVERSIGNED_HEADERS, DEFAULT_SIGNED_HEADERS } from '@inkan/dkim-core';
import { ConfigError } from './errors.js';
import { compatEntry, OPENDKIM_OPTIONS, refusalText, warningText } from './opendkim-compat.js';

/** What a message that ran into trouble gets (opendkim.conf's On-* values). */
export type Action = 'accept' | 'reject' | 'tempfail' | 'discard' | 'quarantine';
export const ACTIONS: readonly Action[] = ['accept', 'reject', 'tempfail', 'discard', 'quarantine'];

/** The kinds of value an option takes. */
type Kind =
  | 'string'
  | 'boolean'
  | 'integer'
  | 'octal'
  | 'list'
  | 'headers'
  | 'dataset'
  | 'action'
  | 'mode'
  | 'canonicalization'
  | 'algorithm';

interface OptionSpec {
  /** The name in opendkim.conf. */
  name: string;
  key: keyof Config;
  kind: Kind;
  description: string;
  /** Smallest and largest value of an integer option. */
  min?: number;
  max?: number;
  /** An integer option where 0 stands for this value (OpenDKIM's "0: no limit"). */
  zeroMeans?: number;
}

/**
 * Where a table or list comes from: inline values, a file (refile: holds wildcard patterns),
 * or a store shared by many hosts (postgresql://... or redis://..., see docs/fleet.md).
 */
export type Dataset =
  | { kind: 'list'; values: string[] }
  | { kind: 'file'; path: string }
  | { kind: 'refile'; path: string }
  | { kind: 'postgresql'; url: string }
  | { kind: 'redis'; url: string };

/** The datasets held in a shared store. */
export type StoreDataset = Extract<Dataset, { kind: 'postgresql' | 'redis' }>;

export function isStoreDataset(dataset: Dataset | undefined): dataset is StoreDataset {
  return dataset?.kind === 'postgresql' || dataset?.kind === 'redis';
}

/** The effective configuration, opendkim.conf's options in camelCase. */
export interface Config {
  mode: { sign: boolean; verify: boolean };
  domain?: Dataset;
  selector?: string;
  keyFile?: string;
  /** New in inkan: "selector:/path/key" pairs that sign every Domain, e.g. RSA and Ed25519. */
  signingKeys: string[];
  keyTable?: Dataset;
  signingTable?: Dataset;
  multipleSignatures: boolean;
  internalHosts: Dataset;
  externalIgnoreList?: Dataset;
  /** MTA hosts allowed to connect over TCP; required when Socket is not on loopback. */
  milterPeers?: Dataset;
  /** OpenDKIM's PeerList: SMTP clients whose mail is passed unprocessed (not signed, not verified). */
  peerList?: Dataset;
  socket: string;
  pidFile?: string;
  userId?: string;
  /** Keep running as root when started as root with no UserID (never by accident). */
  allowRoot: boolean;
  umask: number;
  syslog: boolean;
  syslogFacility: string;
  canonicalization: string;
  signatureAlgorithm: 'rsa-sha256' | 'ed25519-sha256';
  /** SignatureAlgorithm (or -S) was given: every key must be of its type. Unset, each key signs with its own algorithm. */
  signatureAlgorithmSet?: boolean;
  oversignHeaders?: string[];
  signHeaders?: string[];
  /** Fields never signed (From excepted); unset: RFC 6376 §5.4's SHOULD NOT list. */
  omitHeaders?: string[];
  minimumKeyBits: number;
  subDomains: boolean;
  authservId?: string;
  alwaysAddArHeader: boolean;
  nameservers?: string[];
  dnsTimeout: number;
  /** Keep key records for 5 minutes (NOTFOUND for 1), bounded. */
  queryCache: boolean;
  requireSafeKeys: boolean;
  onBadSignature: Action;
  onDnsError: Action;
  onKeyNotFound: Action;
  onInternalError: Action;
  onNoSignature: Action;
  onSignatureError: Action;
  onSecurity: Action;
  maximumSignaturesToVerify: number;
  logWhy: boolean;
  /** On-Default: applied to every On-* action the same file does not set. */
  onDefault?: Action;
  /** Loopback address:port for Prometheus metrics (off when absent). */
  metricsListen?: string;
  /** Where the no-argument first run keeps its development key. */
  stateDirectory?: string;
  /** Seconds an MTA connection may stay silent (no command, or a packet left half sent) before it is closed. */
  milterIdleTimeout: number;
  /** Seconds between SMFIR_PROGRESS keepalives while a message's end is being worked on (0: none). */
  milterProgressInterval: number;
  /** Header fields one message may have; past it the message gets On-Security (counted while they arrive). */
  maximumHeaders: number;
  /** Bytes one message's header section may take; past it the message gets On-Security. */
  maximumHeaderBytes: number;
  /** MTA connections open at once; more are closed at once (the MTA applies its default action). */
  maximumConnections: number;
  /** Largest milter packet accepted from the MTA; a larger one closes that connection. */
  maximumPacketSize: number;
  /** Bytes held in partly received packets across all connections; past it the connection that asks for more is closed. */
  maximumBufferedBytes: number;
  /** RSA keys larger than this never pass (policy): they cost too much to check. */
  maximumKeyBits: number;
  /** Clients the MTA reports on a unix socket count as internal (signed); otherwise InternalHosts decides. */
  unixClientsInternal: boolean;
  /** Seconds a new signature stays valid (x= is t= plus this); 0: no x=. */
  signatureTtl: number;
  /** OpenDKIM's test option: key records are read from this file ("name record" lines), never from DNS. */
  testPublicKeys?: string;
  /** OpenDKIM's test dataset of TXT records (a file), used as TestPublicKeys. */
  testDnsData?: Dataset;
}

export const OPTIONS: readonly OptionSpec[] = [
  { name: 'Mode', key: 'mode', kind: 'mode', description: 's (sign), v (verify) or sv' },
  { name: 'Domain', key: 'domain', kind: 'dataset', description: 'domains to sign for' },
  { name: 'Selector', key: 'selector', kind: 'string', description: 'selector used with KeyFile' },
  { name: 'KeyFile', key: 'keyFile', kind: 'string', description: 'private key used with Selector for every Domain' },
  {
    name: 'SigningKeys',
    key: 'signingKeys',
    kind: 'list',
    description: 'selector:keyfile pairs, each signing every Domain (dual RSA + Ed25519 signing)',
  },
  {
    name: 'KeyTable',
    key: 'keyTable',
    kind: 'dataset',
    description: 'keyname -> domain:selector:keyfile (or a postgresql:// or redis:// store)',
  },
  {
    name: 'SigningTable',
    key: 'signingTable',
    kind: 'dataset',
    description: 'sender pattern -> keyname (refile: for wildcards; or a store)',
  },
  { name: 'MultipleSignatures', key: 'multipleSignatures', kind: 'boolean', description: 'sign with every matching SigningTable entry' },
  {
    name: 'InternalHosts',
    key: 'internalHosts',
    kind: 'dataset',
    description: 'clients whose mail is signed (IPs, CIDRs, host names; or the store of KeyTable)',
  },
  {
    name: 'ExternalIgnoreList',
    key: 'externalIgnoreList',
    kind: 'dataset',
    description: 'external hosts allowed to send for our domains, not logged',
  },
  {
    name: 'MilterPeers',
    key: 'milterPeers',
    kind: 'dataset',
    description: 'MTA hosts allowed to connect over TCP (needed for a non-loopback Socket)',
  },
  { name: 'PeerList', key: 'peerList', kind: 'dataset', description: 'SMTP clients whose mail is passed unprocessed (as OpenDKIM)' },
  { name: 'Socket', key: 'socket', kind: 'string', description: 'milter socket: local:/path, inet:port@host, ...' },
  { name: 'PidFile', key: 'pidFile', kind: 'string', description: 'write the process id here' },
  { name: 'UserID', key: 'userId', kind: 'string', description: 'user[:group] to run as after start' },
  { name: 'AllowRoot', key: 'allowRoot', kind: 'boolean', description: 'keep running as root (not recommended)' },
  { name: 'UMask', key: 'umask', kind: 'octal', description: 'umask for the socket and pid file' },
  { name: 'Syslog', key: 'syslog', kind: 'boolean', description: 'log to syslog instead of JSON on stdout' },
  { name: 'SyslogFacility', key: 'syslogFacility', kind: 'string', description: 'syslog facility (default mail)' },
  { name: 'Canonicalization', key: 'canonicalization', kind: 'canonicalization', description: 'header/body canonicalization for signing' },
  { name: 'SignatureAlgorithm', key: 'signatureAlgorithm', kind: 'algorithm', description: 'rsa-sha256 or ed25519-sha256' },
  {
    name: 'OversignHeaders',
    key: 'oversignHeaders',
    kind: 'headers',
    description: 'fields signed once more than they occur ("*,+X,-Y" edits the default From)',
  },
  {
    name: 'SignHeaders',
    key: 'signHeaders',
    kind: 'headers',
    description: 'fields to sign when present ("*,+X,-Y" edits the default list)',
  },
  {
    name: 'OmitHeaders',
    key: 'omitHeaders',
    kind: 'headers',
    description: 'fields never signed, From excepted ("*,+X,-Y" edits the default list)',
  },
  { name: 'MinimumKeyBits', key: 'minimumKeyBits', kind: 'integer', description: 'RSA keys smaller than this never pass' },
  { name: 'SubDomains', key: 'subDomains', kind: 'boolean', description: 'sign mail from subdomains of Domain' },
  { name: 'AuthservID', key: 'authservId', kind: 'string', description: 'authserv-id in Authentication-Results (default: host name)' },
  { name: 'AlwaysAddARHeader', key: 'alwaysAddArHeader', kind: 'boolean', description: 'add dkim=none when there is no signature' },
  { name: 'Nameservers', key: 'nameservers', kind: 'list', description: 'DNS servers for key lookups (host, host:port, host@port)' },
  {
    name: 'DNSTimeout',
    key: 'dnsTimeout',
    kind: 'integer',
    min: 1,
    max: 3600,
    description: 'seconds a key lookup may take, retries included; then temperror',
  },
  { name: 'QueryCache', key: 'queryCache', kind: 'boolean', description: 'keep key records a few minutes (default yes)' },
  { name: 'RequireSafeKeys', key: 'requireSafeKeys', kind: 'boolean', description: 'refuse keys that others can read or write' },
  {
    name: 'On-BadSignature',
    key: 'onBadSignature',
    kind: 'action',
    description: 'a signature failed or could not be checked (not for t=y keys: accept)',
  },
  { name: 'On-DNSError', key: 'onDnsError', kind: 'action', description: 'a key lookup failed temporarily' },
  { name: 'On-KeyNotFound', key: 'onKeyNotFound', kind: 'action', description: 'no key at the selector' },
  { name: 'On-InternalError', key: 'onInternalError', kind: 'action', description: 'inkan itself failed' },
  { name: 'On-NoSignature', key: 'onNoSignature', kind: 'action', description: 'a message to verify has no signature' },
  {
    name: 'On-SignatureError',
    key: 'onSignatureError',
    kind: 'action',
    description: 'a message could not be signed (the message or the key)',
  },
  { name: 'On-Security', key: 'onSecurity', kind: 'action', description: 'a security concern (a message with several From fields)' },
  { name: 'On-Default', key: 'onDefault', kind: 'action', description: 'every On-* action this file does not set' },
  {
    name: 'MaximumSignaturesToVerify',
    key: 'maximumSignaturesToVerify',
    kind: 'integer',
    description: 'signatures checked per message, DKIM and DomainKeys together (default 10); the rest: policy',
  },
  { name: 'LogWhy', key: 'logWhy', kind: 'boolean', description: 'log why each message was signed, verified or left alone' },
  { name: 'MetricsListen', key: 'metricsListen', kind: 'string', description: 'Prometheus metrics on this loopback host:port' },
  { name: 'StateDirectory', key: 'stateDirectory', kind: 'string', description: 'where the first-run development key is kept' },
  {
    name: 'MilterIdleTimeout',
    key: 'milterIdleTimeout',
    kind: 'integer',
    min: 1,
    max: 86_400,
    description: 'seconds an MTA connection may stay silent (also mid-packet) before it is closed (default 7210; read at start)',
  },
  {
    name: 'MilterProgressInterval',
    key: 'milterProgressInterval',
    kind: 'integer',
    min: 0,
    max: 3600,
    description: 'seconds between progress keepalives to the MTA while a message is finished (default 5, 0 none; read at start)',
  },
  {
    name: 'MaximumHeaderFields',
    key: 'maximumHeaders',
    kind: 'integer',
    min: 1,
    max: 1_000_000,
    description: 'header fields per message (default 1000); more: On-Security',
  },
  {
    name: 'MaximumHeaders',
    key: 'maximumHeaderBytes',
    kind: 'integer',
    min: 1024,
    max: 268_435_456,
    zeroMeans: 268_435_456,
    description: "OpenDKIM's name for MaximumHeaderBytes (bytes of one header section; 0: the largest allowed)",
  },
  {
    name: 'MaximumHeaderBytes',
    key: 'maximumHeaderBytes',
    kind: 'integer',
    min: 1024,
    max: 268_435_456,
    description: 'bytes of one header section (default 1048576); more: On-Security',
  },
  {
    name: 'MaximumConnections',
    key: 'maximumConnections',
    kind: 'integer',
    min: 1,
    max: 1_000_000,
    description: 'MTA connections at once (default 1024); more are closed',
  },
  {
    name: 'MaximumPacketSize',
    key: 'maximumPacketSize',
    kind: 'integer',
    min: 65_536,
    max: 268_435_456,
    description: 'largest milter packet from the MTA (default 1048576); larger closes the connection',
  },
  {
    name: 'MaximumBufferedBytes',
    key: 'maximumBufferedBytes',
    kind: 'integer',
    min: 1_048_576,
    max: 17_179_869_184,
    description: 'bytes of partly received packets held across all connections (default 67108864)',
  },
  {
    name: 'MaximumKeyBits',
    key: 'maximumKeyBits',
    kind: 'integer',
    min: 1024,
    max: 16_384,
    description: 'larger RSA keys never pass (policy; default 4096)',
  },
  {
    name: 'UnixClientsInternal',
    key: 'unixClientsInternal',
    kind: 'boolean',
    description: 'clients on a unix socket count as internal (default no: InternalHosts decides)',
  },
  {
    name: 'SignatureTTL',
    key: 'signatureTtl',
    kind: 'integer',
    min: 0,
    max: 315_360_000,
    description: 'seconds a new signature is valid (x=); 0 (default): no x=',
  },
  {
    name: 'TestPublicKeys',
    key: 'testPublicKeys',
    kind: 'string',
    description: 'tests only: key records from this file ("name record" lines), none from DNS; warned at start',
  },
  {
    name: 'TestDNSData',
    key: 'testDnsData',
    kind: 'dataset',
    description: 'tests only: TXT records from this file (file:/path), as TestPublicKeys',
  },
];

const BY_NAME = new Map(OPTIONS.map((o) => [o.name.toLowerCase(), o]));

export function defaults(): Config {
  return {
    mode: { sign: true, verify: true },
    signingKeys: [],
    multipleSignatures: false,
    internalHosts: { kind: 'list', values: ['127.0.0.1', '::1'] },
    socket: 'inet:8891@127.0.0.1',
    allowRoot: false,
    umask: 0o007,
    syslog: false,
    syslogFacility: 'mail',
    canonicalization: 'relaxed/relaxed',
    signatureAlgorithm: 'rsa-sha256',
    minimumKeyBits: 1024,
    subDomains: false,
    alwaysAddArHeader: false,
    dnsTimeout: 5,
    queryCache: true,
    requireSafeKeys: true,
    onBadSignature: 'accept',
    // OpenDKIM's documented defaults: DNS trouble is tried again later, a message that cannot be signed is refused.
    onDnsError: 'tempfail',
    onKeyNotFound: 'accept',
    onInternalError: 'tempfail',
    onNoSignature: 'accept',
    onSignatureError: 'reject',
    // OpenDKIM's documented default: a message with several From fields is held, not passed.
    onSecurity: 'tempfail',
    maximumSignaturesToVerify: 10,
    logWhy: false,
    milterIdleTimeout: 7210,
    milterProgressInterval: 5,
    maximumHeaders: 1000,
    maximumHeaderBytes: 1024 * 1024,
    maximumConnections: 1024,
    maximumPacketSize: 1024 * 1024,
    maximumBufferedBytes: 64 * 1024 * 1024,
    maximumKeyBits: 4096,
    unixClientsInternal: false,
    signatureTtl: 0,
  };
}

/** OpenDKIM reads only the first byte of a boolean (T, Y, 1 / F, N, 0); on and off are taken too. */
function parseBoolean(value: string, where: string, name: string, not: (value: string) => string): boolean {
  const v = value.toLowerCase();
  if (v === 'on') return true;
  if (v === 'off') return false;
  if (/^[ty1]/.test(v)) return true;
  if (/^[fn0]/.test(v)) return false;
  throw new ConfigError(where, `${name} takes yes or no${not(value)}`);
}

/** Datasets OpenDKIM can name that inkan cannot read: refused, never taken as a list of words. */
const UNSUPPORTED_DATASET = /^(ldaps?|ldapi|dsn|db|mdb|memcache|lua|erlang|repl|socket):/i;

type HeaderKey = 'signHeaders' | 'oversignHeaders' | 'omitHeaders';

/** RFC 6376 §5.4's fields that SHOULD NOT be signed: OmitHeaders' default, as OpenDKIM's. */
export const DEFAULT_OMITTED_HEADERS: readonly string[] = [
  'return-path',
  'received',
  'comments',
  'keywords',
  'bcc',
  'resent-bcc',
  'dkim-signature',
];

const HEADER_DEFAULTS: Record<HeaderKey, readonly string[]> = {
  signHeaders: DEFAULT_SIGNED_HEADERS,
  oversignHeaders: DEFAULT_OVERSIGNED_HEADERS,
  omitHeaders: DEFAULT_OMITTED_HEADERS,
};

/**
 * OpenDKIM's header lists: a list replaces the default, unless one item is "*": then "+name"
 * adds to the default list (or the list set so far) and "-name" takes away from it.
 */
function headerList(items: string[], base: readonly string[]): string[] {
  const out: string[] = [];
  const has = (name: string) => out.some((n) => n.toLowerCase() === name.toLowerCase());
  if (!items.includes('*')) {
    for (const item of items) if (item.replace(/^\+/, '') && !has(item.replace(/^\+/, ''))) out.push(item.replace(/^\+/, ''));
    return out;
  }
  out.push(...base);
  for (const item of items) {
    const name = item.slice(1);
    if (item.startsWith('+') && name && !has(name)) out.push(name);
    else if (item.startsWith('-')) out.splice(0, out.length, ...out.filter((n) => n.toLowerCase() !== name.toLowerCase()));
  }
  return out;
}

/** The fields a signature covers when present: SignHeaders (or its default) less OmitHeaders; From always. */
export function signedHeaderNames(config: Config): string[] | undefined {
  if (!config.signHeaders && !config.omitHeaders) return undefined;
  const omit = new Set((config.omitHeaders ?? DEFAULT_OMITTED_HEADERS).map((n) => n.toLowerCase()));
  omit.delete('from');
  return (config.signHeaders ?? DEFAULT_SIGNED_HEADERS).filter((n) => !omit.has(n.toLowerCase()));
}

/** The facility names of syslog.conf(5). */
const SYSLOG_FACILITIES = [
  'auth',
  'authpriv',
  'cron',
  'daemon',
  'ftp',
  'kern',
  'lpr',
  'mail',
  'news',
  'syslog',
  'user',
  'uucp',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
];

/** The On-* options, which On-Default fills in. */
const ACTION_KEYS = [
  'onBadSignature',
  'onDnsError',
  'onKeyNotFound',
  'onInternalError',
  'onNoSignature',
  'onSignatureError',
  'onSecurity',
] as const;

/** OpenDKIM's one-letter actions. */
const ACTION_LETTERS: Record<string, Action> = { a: 'accept', r: 'reject', t: 'tempfail', d: 'discard', q: 'quarantine' };

/** What an unknown option name may be shown as: a word that looks like one (never other text of a line). */
const OPTION_NAME_LIKE = /^[A-Za-z][A-Za-z0-9-]{0,63}$/;

/**
 * A dataset value: "file:/path", "refile:/path", "csl:a,b", a path (starting with / or .),
 * a store URI (postgresql://, postgres://, redis://, rediss://), or a comma list.
 */
export function parseDataset(value: string): Dataset {
  if (/^postgres(ql)?:\/\//i.test(value)) return { kind: 'postgresql', url: value };
  if (/^rediss?:\/\//i.test(value)) return { kind: 'redis', url: value };
  if (value.startsWith('refile:')) return { kind: 'refile', path: value.slice(7) };
  if (value.startsWith('file:')) return { kind: 'file', path: value.slice(5) };
  if (value.startsWith('csl:')) return { kind: 'list', values: splitList(value.slice(4)) };
  if (value.startsWith('/') || value.startsWith('./') || value.startsWith('../')) return { kind: 'file', path: value };
  return { kind: 'list', values: splitList(value) };
}

export function splitList(value: string): string[] {
  return value
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Set one option from its text form. `where` names the file and line (or the flag). Errors
 * quote the value only with `echo` (the command line): a file named by mistake (say
 * /etc/shadow) must not have its lines copied into the log; an unknown name is quoted only
 * if it looks like an option name.
 */
export function setOption(
  config: Config,
  name: string,
  value: string,
  where: string,
  options: { echo?: boolean; warnings?: string[] } = {},
): void {
  const echo = options.echo === true;
  const v = value.trim();
  const compat = compatEntry(name);
  if (compat && compat.status !== 'implemented') {
    // OpenDKIM options inkan does not implement: a warning or a refusal of their own, never
    // a silent change of meaning. Values that mean what inkan does anyway pass silently.
    if (compat.sameFor?.test(v)) return;
    if (compat.status === 'refuse') throw new ConfigError(where, refusalText(compat));
    options.warnings?.push(`${where}: ${warningText(compat)}`);
    return;
  }
  const spec = BY_NAME.get(name.toLowerCase());
  if (!spec) {
    if (!echo && !OPTION_NAME_LIKE.test(name)) throw new ConfigError(where, 'this line is not an option');
    const near = nearestOptionName(name);
    throw new ConfigError(
      where,
      `unknown option "${name}"${near ? ` (did you mean ${near}?)` : ''}; see inkan-milterd --help and docs/opendkim-options.md`,
    );
  }
  const target = config as unknown as Record<string, unknown>;
  const not = (shown: string) => (echo ? `, not "${shown}"` : '');
  if (v === '' && spec.kind !== 'boolean') throw new ConfigError(where, `${spec.name} needs a value`);
  switch (spec.kind) {
    case 'string':
      if (spec.key === 'syslogFacility' && !SYSLOG_FACILITIES.includes(v.toLowerCase())) {
        throw new ConfigError(where, `SyslogFacility takes one of ${SYSLOG_FACILITIES.join(', ')}${not(v)}`);
      }
      target[spec.key] = spec.key === 'syslogFacility' ? v.toLowerCase() : v;
      return;
    case 'boolean':
      target[spec.key] = v === '' ? true : parseBoolean(v, where, spec.name, not);
      return;
    case 'integer':
      if (!/^\d+$/.test(v)) throw new ConfigError(where, `${spec.name} takes a whole number${not(v)}`);
      if (spec.zeroMeans !== undefined && Number(v) === 0) {
        target[spec.key] = spec.zeroMeans;
        return;
      }
      if (!Number.isSafeInteger(Number(v)))
        throw new ConfigError(
          where,
          `${spec.name}: ${echo ? `${v.slice(0, 24)}${v.length > 24 ? '...' : ''}` : 'the number'} is too large`,
        );
      if (spec.min !== undefined && Number(v) < spec.min)
        throw new ConfigError(where, `${spec.name} must be at least ${spec.min}${not(v)}`);
      if (spec.max !== undefined && Number(v) > spec.max) throw new ConfigError(where, `${spec.name} must be at most ${spec.max}${not(v)}`);
      target[spec.key] = Number(v);
      return;
    case 'octal':
      if (!/^[0-7]{1,4}$/.test(v)) throw new ConfigError(where, `${spec.name} takes an octal number such as 007${not(v)}`);
      target[spec.key] = Number.parseInt(v, 8);
      return;
    case 'list':
      target[spec.key] = [...((target[spec.key] as string[] | undefined) ?? []), ...splitList(v)];
      return;
    case 'headers':
      target[spec.key] = headerList(splitList(v), (target[spec.key] as string[] | undefined) ?? HEADER_DEFAULTS[spec.key as HeaderKey]);
      return;
    case 'dataset': {
      const scheme = UNSUPPORTED_DATASET.exec(v)?.[1];
      if (scheme)
        throw new ConfigError(
          where,
          `${spec.name}: ${scheme.toLowerCase()}: datasets are not supported: use a file, refile:, csl:, postgresql:// or redis://`,
        );
      target[spec.key] = parseDataset(v);
      return;
    }
    case 'action': {
      const a = v.toLowerCase();
      const action = ACTIONS.includes(a as Action) ? (a as Action) : ACTION_LETTERS[a];
      if (!action) throw new ConfigError(where, `${spec.name} takes one of ${ACTIONS.join(', ')} (or a, r, t, d, q)${not(v)}`);
      target[spec.key] = action;
      return;
    }
    case 'mode': {
      if (!/^[sv]{1,2}$/.test(v)) throw new ConfigError(where, `Mode takes s, v or sv${not(v)}`);
      config.mode = { sign: v.includes('s'), verify: v.includes('v') };
      return;
    }
    case 'canonicalization':
      if (!/^(simple|relaxed)(\/(simple|relaxed))?$/.test(v))
        throw new ConfigError(where, `Canonicalization takes header/body with simple or relaxed${not(v)}`);
      config.canonicalization = v;
      return;
    case 'algorithm':
      if (v !== 'rsa-sha256' && v !== 'ed25519-sha256') {
        throw new ConfigError(
          where,
          v === 'rsa-sha1'
            ? 'rsa-sha1 is not allowed (RFC 8301): use rsa-sha256'
            : `SignatureAlgorithm takes rsa-sha256 or ed25519-sha256${not(v)}`,
        );
      }
      config.signatureAlgorithm = v;
      config.signatureAlgorithmSet = true;
      return;
  }
}

/** Does this text hold a PEM private key (any kind, encrypted or not)? */
export function holdsPrivateKey(text: string): boolean {
  return /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text);
}

/** Every problem of one configuration file, each naming its file:line (one run reports them all). */
export class ConfigErrors extends ConfigError {
  readonly problems: readonly string[];

  constructor(source: string, problems: string[]) {
    super(source, `${problems.length} problems:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigErrors';
    this.problems = problems;
  }
}

/**
 * Parse opendkim.conf syntax: "Name value" lines, "#" comments (OpenDKIM cuts a line at any
 * "#"). Every bad or unsupported line of the file is reported in one error, each by file:line,
 * never by its value. Options that do not apply to inkan add a line to `warnings`.
 */
export function parseConfigText(text: string, fileName: string, into: Config = defaults(), warnings?: string[]): Config {
  // Never echo a line of it: errors would carry key material to the log and the terminal.
  if (holdsPrivateKey(text))
    throw new ConfigError(fileName, 'holds a private key, not a configuration: keep keys in their own files (KeyFile, KeyTable)');
  const lines = text.split(/\r?\n/);
  const problems: ConfigError[] = [];
  const actionsSet = new Set<string>();
  const target = into as unknown as Record<string, unknown>;
  lines.forEach((raw, index) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const m = /^(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) return;
    const name = m[1] as string;
    try {
      setOption(into, name, m[2] ?? '', `${fileName}:${index + 1}`, warnings ? { warnings } : {});
      const key = BY_NAME.get(name.toLowerCase())?.key;
      if (key && (ACTION_KEYS as readonly string[]).includes(key)) actionsSet.add(key);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(error);
    }
  });
  if (problems.length === 1) throw problems[0] as ConfigError;
  if (problems.length > 1)
    throw new ConfigErrors(
      fileName,
      problems.map((p) => p.message),
    );
  // On-Default comes before the specific On-* options, wherever it stands in the file (as OpenDKIM).
  if (into.onDefault) for (const key of ACTION_KEYS) if (!actionsSet.has(key)) target[key] = into.onDefault;
  return into;
}

/** The option name (ours or OpenDKIM's) closest to a misspelt one, if one is close. */
function nearestOptionName(name: string): string | undefined {
  const wanted = name.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const candidate of [...OPTIONS.map((o) => o.name), ...OPENDKIM_OPTIONS.map((o) => o.name)]) {
    const d = editDistance(wanted, candidate.toLowerCase());
    if (d <= 2 && (!best || d < best.distance)) best = { name: candidate, distance: d };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] as number;
}

/** The option names with their descriptions, for --help. */
export function describeOptions(): string {
  return OPTIONS.map((o) => `  ${o.name.padEnd(26)} ${o.description}`).join('\n');
}
