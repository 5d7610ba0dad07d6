import { ConfigError } from './errors.js';

/** What a message that ran into trouble gets (opendkim.conf's On-* values). */
export type Action = 'accept' | 'reject' | 'tempfail' | 'discard' | 'quarantine';
export const ACTIONS: readonly Action[] = ['accept', 'reject', 'tempfail', 'discard', 'quarantine'];

/** The kinds of value an option takes. */
type Kind = 'string' | 'boolean' | 'integer' | 'octal' | 'list' | 'dataset' | 'action' | 'mode' | 'canonicalization' | 'algorithm';

interface OptionSpec {
  /** The name in opendkim.conf. */
  name: string;
  key: keyof Config;
  kind: Kind;
  description: string;
  /** Smallest and largest value of an integer option. */
  min?: number;
  max?: number;
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
  oversignHeaders?: string[];
  signHeaders?: string[];
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
  background: boolean;
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
}

export const OPTIONS: readonly OptionSpec[] = [
  { name: 'Mode', key: 'mode', kind: 'mode', description: 's (sign), v (verify) or sv' },
  { name: 'Domain', key: 'domain', kind: 'dataset', description: 'domains to sign for' },
  { name: 'Selector', key: 'selector', kind: 'string', description: 'selector used with KeyFile' },
  { name: 'KeyFile', key: 'keyFile', kind: 'string', description: 'private key used with Selector for every Domain' },
  { name: 'SigningKeys', key: 'signingKeys', kind: 'list', description: 'selector:keyfile pairs, each signing every Domain (dual RSA + Ed25519 signing)' },
  { name: 'KeyTable', key: 'keyTable', kind: 'dataset', description: 'keyname -> domain:selector:keyfile (or a postgresql:// or redis:// store)' },
  { name: 'SigningTable', key: 'signingTable', kind: 'dataset', description: 'sender pattern -> keyname (refile: for wildcards; or a store)' },
  { name: 'MultipleSignatures', key: 'multipleSignatures', kind: 'boolean', description: 'sign with every matching SigningTable entry' },
  { name: 'InternalHosts', key: 'internalHosts', kind: 'dataset', description: 'clients whose mail is signed (IPs, CIDRs, host names; or the store of KeyTable)' },
  { name: 'ExternalIgnoreList', key: 'externalIgnoreList', kind: 'dataset', description: 'external hosts allowed to send for our domains, not logged' },
  { name: 'PeerList', key: 'peerList', kind: 'dataset', description: 'MTA hosts allowed to connect over TCP (needed for a non-loopback Socket)' },
  { name: 'Socket', key: 'socket', kind: 'string', description: 'milter socket: local:/path, inet:port@host, ...' },
  { name: 'PidFile', key: 'pidFile', kind: 'string', description: 'write the process id here' },
  { name: 'UserID', key: 'userId', kind: 'string', description: 'user[:group] to run as after start' },
  { name: 'AllowRoot', key: 'allowRoot', kind: 'boolean', description: 'keep running as root (not recommended)' },
  { name: 'UMask', key: 'umask', kind: 'octal', description: 'umask for the socket and pid file' },
  { name: 'Syslog', key: 'syslog', kind: 'boolean', description: 'log to syslog instead of JSON on stdout' },
  { name: 'SyslogFacility', key: 'syslogFacility', kind: 'string', description: 'syslog facility (default mail)' },
  { name: 'Canonicalization', key: 'canonicalization', kind: 'canonicalization', description: 'header/body canonicalization for signing' },
  { name: 'SignatureAlgorithm', key: 'signatureAlgorithm', kind: 'algorithm', description: 'rsa-sha256 or ed25519-sha256' },
  { name: 'OversignHeaders', key: 'oversignHeaders', kind: 'list', description: 'fields signed once more than they occur' },
  { name: 'SignHeaders', key: 'signHeaders', kind: 'list', description: 'fields to sign when present' },
  { name: 'MinimumKeyBits', key: 'minimumKeyBits', kind: 'integer', description: 'RSA keys smaller than this never pass' },
  { name: 'SubDomains', key: 'subDomains', kind: 'boolean', description: 'sign mail from subdomains of Domain' },
  { name: 'AuthservID', key: 'authservId', kind: 'string', description: 'authserv-id in Authentication-Results (default: host name)' },
  { name: 'AlwaysAddARHeader', key: 'alwaysAddArHeader', kind: 'boolean', description: 'add dkim=none when there is no signature' },
  { name: 'Nameservers', key: 'nameservers', kind: 'list', description: 'DNS servers for key lookups (host, host:port, host@port)' },
  { name: 'DNSTimeout', key: 'dnsTimeout', kind: 'integer', min: 1, max: 3600, description: 'seconds a key lookup may take, retries included; then temperror' },
  { name: 'QueryCache', key: 'queryCache', kind: 'boolean', description: 'keep key records a few minutes (default yes)' },
  { name: 'RequireSafeKeys', key: 'requireSafeKeys', kind: 'boolean', description: 'refuse keys that others can read or write' },
  { name: 'On-BadSignature', key: 'onBadSignature', kind: 'action', description: 'a signature failed' },
  { name: 'On-DNSError', key: 'onDnsError', kind: 'action', description: 'a key lookup failed temporarily' },
  { name: 'On-KeyNotFound', key: 'onKeyNotFound', kind: 'action', description: 'no key at the selector' },
  { name: 'On-InternalError', key: 'onInternalError', kind: 'action', description: 'inkan itself failed' },
  { name: 'On-NoSignature', key: 'onNoSignature', kind: 'action', description: 'a message to verify has no signature' },
  { name: 'On-SignatureError', key: 'onSignatureError', kind: 'action', description: 'a signature could not be made or read' },
  { name: 'On-Security', key: 'onSecurity', kind: 'action', description: 'a security concern (a message with several From fields)' },
  { name: 'MaximumSignaturesToVerify', key: 'maximumSignaturesToVerify', kind: 'integer', description: 'signatures checked per message' },
  { name: 'LogWhy', key: 'logWhy', kind: 'boolean', description: 'log why each message was signed, verified or left alone' },
  { name: 'Background', key: 'background', kind: 'boolean', description: 'accepted for compatibility; inkan always stays in the foreground (use systemd)' },
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
  { name: 'MaximumHeaders', key: 'maximumHeaders', kind: 'integer', min: 1, max: 1_000_000, description: 'header fields per message (default 1000); more: On-Security' },
  {
    name: 'MaximumHeaderBytes',
    key: 'maximumHeaderBytes',
    kind: 'integer',
    min: 1024,
    max: 268_435_456,
    description: 'bytes of one header section (default 1048576); more: On-Security',
  },
  { name: 'MaximumConnections', key: 'maximumConnections', kind: 'integer', min: 1, max: 1_000_000, description: 'MTA connections at once (default 1024); more are closed' },
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
  { name: 'MaximumKeyBits', key: 'maximumKeyBits', kind: 'integer', min: 1024, max: 16_384, description: 'larger RSA keys never pass (policy; default 4096)' },
  { name: 'UnixClientsInternal', key: 'unixClientsInternal', kind: 'boolean', description: 'clients on a unix socket count as internal (default no: InternalHosts decides)' },
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
    onDnsError: 'accept',
    onKeyNotFound: 'accept',
    onInternalError: 'tempfail',
    onNoSignature: 'accept',
    onSignatureError: 'accept',
    // OpenDKIM's documented default: a message with several From fields is held, not passed.
    onSecurity: 'tempfail',
    maximumSignaturesToVerify: 10,
    logWhy: false,
    background: false,
    milterIdleTimeout: 7210,
    milterProgressInterval: 5,
    maximumHeaders: 1000,
    maximumHeaderBytes: 1024 * 1024,
    maximumConnections: 1024,
    maximumPacketSize: 1024 * 1024,
    maximumBufferedBytes: 64 * 1024 * 1024,
    maximumKeyBits: 4096,
    unixClientsInternal: false,
  };
}

function parseBoolean(value: string, where: string, name: string, not: (value: string) => string): boolean {
  const v = value.toLowerCase();
  if (['yes', 'true', '1', 'on'].includes(v)) return true;
  if (['no', 'false', '0', 'off'].includes(v)) return false;
  throw new ConfigError(where, `${name} takes yes or no${not(value)}`);
}

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
export function setOption(config: Config, name: string, value: string, where: string, options: { echo?: boolean } = {}): void {
  const echo = options.echo === true;
  const spec = BY_NAME.get(name.toLowerCase());
  if (!spec) throw new ConfigError(where, echo || OPTION_NAME_LIKE.test(name) ? `unknown option "${name}"` : 'this line is not an option');
  const target = config as unknown as Record<string, unknown>;
  const v = value.trim();
  const not = (shown: string) => (echo ? `, not "${shown}"` : '');
  if (v === '' && spec.kind !== 'boolean') throw new ConfigError(where, `${spec.name} needs a value`);
  switch (spec.kind) {
    case 'string':
      target[spec.key] = v;
      return;
    case 'boolean':
      target[spec.key] = v === '' ? true : parseBoolean(v, where, spec.name, not);
      return;
    case 'integer':
      if (!/^\d+$/.test(v)) throw new ConfigError(where, `${spec.name} takes a whole number${not(v)}`);
      if (!Number.isSafeInteger(Number(v))) throw new ConfigError(where, `${spec.name}: ${echo ? `${v.slice(0, 24)}${v.length > 24 ? '...' : ''}` : 'the number'} is too large`);
      if (spec.min !== undefined && Number(v) < spec.min) throw new ConfigError(where, `${spec.name} must be at least ${spec.min}${not(v)}`);
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
    case 'dataset':
      target[spec.key] = parseDataset(v);
      return;
    case 'action': {
      const a = v.toLowerCase();
      if (!ACTIONS.includes(a as Action)) throw new ConfigError(where, `${spec.name} takes one of ${ACTIONS.join(', ')}${not(v)}`);
      target[spec.key] = a;
      return;
    }
    case 'mode': {
      if (!/^[sv]{1,2}$/.test(v)) throw new ConfigError(where, `Mode takes s, v or sv${not(v)}`);
      config.mode = { sign: v.includes('s'), verify: v.includes('v') };
      return;
    }
    case 'canonicalization':
      if (!/^(simple|relaxed)(\/(simple|relaxed))?$/.test(v)) throw new ConfigError(where, `Canonicalization takes header/body with simple or relaxed${not(v)}`);
      config.canonicalization = v;
      return;
    case 'algorithm':
      if (v !== 'rsa-sha256' && v !== 'ed25519-sha256') {
        throw new ConfigError(where, v === 'rsa-sha1' ? 'rsa-sha1 is not allowed (RFC 8301): use rsa-sha256' : `SignatureAlgorithm takes rsa-sha256 or ed25519-sha256${not(v)}`);
      }
      config.signatureAlgorithm = v;
      return;
  }
}

/** Does this text hold a PEM private key (any kind, encrypted or not)? */
export function holdsPrivateKey(text: string): boolean {
  return /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text);
}

/** Parse opendkim.conf syntax: "Name value" lines, "#" comments. Errors name file and line, never a value. */
export function parseConfigText(text: string, fileName: string, into: Config = defaults()): Config {
  // Never echo a line of it: errors would carry key material to the log and the terminal.
  if (holdsPrivateKey(text)) throw new ConfigError(fileName, 'holds a private key, not a configuration: keep keys in their own files (KeyFile, KeyTable)');
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') return;
    const m = /^(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) return;
    setOption(into, m[1] as string, m[2] ?? '', `${fileName}:${index + 1}`);
  });
  return into;
}

/** The option names with their descriptions, for --help. */
export function describeOptions(): string {
  return OPTIONS.map((o) => `  ${o.name.padEnd(26)} ${o.description}`).join('\n');
}
