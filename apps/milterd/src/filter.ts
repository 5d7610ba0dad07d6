import { Buffer } from 'node:buffer';
import {
  type AuthResultEntry,
  type KeyResolver,
  type HeaderField,
  type VerificationResult,
  DkimError,
  Signer,
  formatAuthenticationResults,
  headerValue,
  parseAuthenticationResults,
} from '@inkan/dkim-core';
import { CombinedVerifier } from '@inkan/domainkeys-verify';
import {
  ActionFlags,
  type ConnectInfo,
  type Decision,
  type HandlerFactory,
  type MilterContext,
  type MilterHandler,
  type Modifier,
  ProtocolFlags,
} from '@inkan/milter-protocol';
import type { Logger } from 'pino';
import { domainOf, fromAddress } from './address.js';
import { type Action, type Config, signedHeaderNames } from './config/options.js';
import type { SharedTables } from './config/stores/store-plan.js';
import type { PlanLookup, SigningKey, SigningPlan } from './config/tables.js';
import type { HostList } from './hosts.js';
import type { Metrics } from './metrics.js';

/** Everything a message needs; replaced as a whole on reload (SIGHUP). */
export interface Runtime {
  config: Config;
  plan: SigningPlan;
  internalHosts: HostList;
  externalIgnore?: HostList;
  /** OpenDKIM's PeerList: SMTP clients whose mail is passed unprocessed. */
  peerList?: HostList;
  resolver: KeyResolver;
  /** AuthservID as configured (HOSTNAME resolved), else this host's name (used when the MTA sends no j macro). */
  authservId: string;
  logger: Logger;
  metrics?: Metrics;
  /** The shared store the tables come from (plan and maybe internalHosts then follow it). */
  tables?: SharedTables;
}

/**
 * What milterd asks of the MTA at negotiation. Adding fields (signatures, Authentication-Results)
 * and changing them (removing forged Authentication-Results) are required: an MTA that does not
 * grant them is refused at negotiation, as libmilter does, so it applies its milter default
 * action to the connection instead of every message failing at its end (and being retried in
 * vain). Quarantine is used only when an On-* action asks for it. The filter decides at end of
 * headers and end of message: MAIL, header fields and body chunks need no reply, which spares
 * the MTA a round trip per field (over TCP the server keeps only the header one: see
 * milter-protocol's TCP_NO_REPLY).
 */
export const MILTERD_NEGOTIATION = {
  actions: ActionFlags.AddHeaders | ActionFlags.ChangeHeaders | ActionFlags.Quarantine,
  requiredActions: ActionFlags.AddHeaders | ActionFlags.ChangeHeaders,
  protocol: ProtocolFlags.HeaderLeadingSpace | ProtocolFlags.NoReplyMail | ProtocolFlags.NoReplyHeader | ProtocolFlags.NoReplyBody,
  macros: {
    connect: ['j', '{daemon_name}'],
    mail: ['i', '{auth_authen}', '{auth_type}'],
    endOfHeaders: ['i', '{auth_authen}'],
    endOfMessage: ['i'],
  },
};

/**
 * hold: should be signed, but no usable key is known now (tables not loaded, or bad rows): tempfail.
 * refused: would be signed, but the message raises a security concern: never signed, On-Security applies.
 */
type Role = 'sign' | 'verify' | 'hold' | 'refused' | 'none';

interface MessageState {
  runtime: Runtime;
  /** The header fields, while they stay within MaximumHeaders and MaximumHeaderBytes; emptied past a limit. */
  headers: HeaderField[];
  /** Header fields and their raw bytes (name, colon, value, CRLF), counted past a limit too. */
  headerCount: number;
  headerBytes: number;
  /** Which header limit the message went over, if it did. */
  overLimit?: string;
  /** The first From field (kept past a limit too, to tell a message to sign from one to verify). */
  firstFrom?: HeaderField;
  fromCount: number;
  /** DKIM-Signature and DomainKey-Signature fields seen (counted past a limit too). */
  signatureFields: number;
  /** 1-based indexes (among Authentication-Results fields) of forged ones claiming our authserv-id. */
  forgedAr: number[];
  arSeen: number;
  role: Role;
  why: string;
  from?: string;
  signer?: Signer;
  verifier?: CombinedVerifier;
  failure?: Error;
  /** A security concern found in the message (On-Security applies). */
  security?: string;
  /** The SMTP status of a refusal for `security` (enhanced code, temporary and permanent). */
  securityStatus?: Status;
  /** The reply given at end of headers, when the message ended there. */
  ended?: Decision;
}

/** Enhanced status codes (RFC 3463) of a refusal: [temporary, permanent]. */
type Status = readonly [string, string];
/** A DKIM verdict: cryptographic failure / no passing signature (RFC 7372). */
const DKIM_STATUS: Status = ['4.7.5', '5.7.20'];
/** A message that cannot be signed: "other or undefined security status" (RFC 3463), as OpenDKIM replies. */
const SIGN_STATUS: Status = ['4.7.0', '5.7.0'];
/** Over a header limit: message too big for system. */
const LIMIT_STATUS: Status = ['4.3.4', '5.3.4'];
/** Not a valid RFC 5322 message (several From fields): media error. */
const FORMAT_STATUS: Status = ['4.6.0', '5.6.0'];

const SEVERITY: Record<Action, number> = { accept: 0, quarantine: 1, discard: 2, tempfail: 3, reject: 4 };
const LF_ONLY = /(?<!\r)\n/g;
/** Longest attacker-controlled text put in a log line (see forLog). */
const LOG_TEXT_MAX = 256;

/**
 * Text an attacker controls (a From address, a reason, a queue id...) bounded for a log
 * line: longer than `max` characters, it is cut with a marker saying how much was left out.
 */
export function forLog(text: string | undefined, max = LOG_TEXT_MAX): string | undefined {
  if (text === undefined || text.length <= max) return text;
  return `${text.slice(0, max)}...[${text.length - max} more characters]`;
}

/** Normalized authserv-id: case-insensitive, trailing dot ignored (RFC 8601 §2.5 compares them as domain names). */
function sameAuthservId(a: string, b: string): boolean {
  const norm = (id: string) => id.toLowerCase().replace(/\.$/, '');
  return norm(a) === norm(b);
}

/** A header value from the MTA (folded with bare LF, leading space kept) as raw field bytes. */
function rawField(name: string, value: Buffer): HeaderField {
  const text = value.toString('latin1').replace(LF_ONLY, '\r\n');
  return { name, raw: Buffer.from(`${name}:${text}\r\n`, 'latin1') };
}

/** rawField(name, value).raw.length, without making the field. */
function rawFieldSize(name: string, value: Buffer): number {
  let size = Buffer.byteLength(name, 'latin1') + 1 + value.length + 2;
  for (let i = value.indexOf(0x0a); i >= 0; i = value.indexOf(0x0a, i + 1)) if (i === 0 || value[i - 1] !== 0x0d) size++;
  return size;
}

/** A field value for the MTA: folded with LF, leading space only if the MTA will not add one. */
function valueForMta(value: string, ctx: MilterContext): string {
  const v = value.replace(/\r\n/g, '\n');
  return ctx.options.protocol & ProtocolFlags.HeaderLeadingSpace ? (v.startsWith(' ') ? v : ` ${v}`) : v.replace(/^ /, '');
}

/**
 * A field value ready for insertHeader, or an error: a NUL, or a line break not followed by
 * white space (which would end the field and start another), is never handed to the MTA.
 */
function safeValueForMta(name: string, value: string, ctx: MilterContext): string {
  const v = valueForMta(value, ctx);
  if (v.includes('\0')) throw new Error(`refused to insert ${name}: its value contains NUL`);
  if (/\r|\n(?![ \t])/.test(v)) throw new Error(`refused to insert ${name}: its value contains a line break not followed by white space`);
  return v;
}

/**
 * Is the SMTP client internal (its mail is signed)? InternalHosts decides on the address and
 * host name the MTA reported. A client on a unix socket has no address (only a host-name entry
 * can match it) unless UnixClientsInternal is set; one of unknown family, or a message without
 * CONNECT, has no address either.
 */
function isInternal(client: ConnectInfo | undefined, internalHosts: HostList, config: Config): boolean {
  if (!client) return false;
  if (client.family === 'unix' && config.unixClientsInternal) return true;
  const inet = client.family === 'inet' || client.family === 'inet6';
  return internalHosts.matches(inet ? client.ip : undefined, client.hostname);
}

/**
 * The authserv-id of a message: AuthservID when configured, else the name of the MTA
 * (its j macro, when it looks like a host name), else this host's name, as OpenDKIM.
 */
function authservIdOf(runtime: Runtime, ctx: MilterContext): string {
  if (runtime.config.authservId) return runtime.authservId;
  const j = ctx.macros.get('j');
  return j && /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(j) ? j : runtime.authservId;
}

/**
 * Which configured action the verification results call for, as OpenDKIM classifies them:
 * a key lookup that failed temporarily gets On-DNSError; no key at the selector, On-KeyNotFound;
 * every other failure (a bad signature, a revoked key, a signature or key that cannot be
 * checked) On-BadSignature, which a key in testing mode (t=y) turns from reject, tempfail or
 * discard into accept. On-SignatureError is for mail that cannot be signed.
 */
export function verdictAction(config: Config, results: VerificationResult[]): { action: Action; why: string } {
  if (results.length === 0) return { action: config.onNoSignature, why: 'no signature' };
  if (results.some((r) => r.result === 'pass')) return { action: 'accept', why: 'a signature passed' };
  let worst: { action: Action; why: string } = { action: 'accept', why: 'no passing signature' };
  for (const r of results) {
    let candidate: { action: Action; why: string } | undefined;
    if (r.result === 'temperror') candidate = { action: config.onDnsError, why: `DNS error: ${r.reason}` };
    else if (r.code === 'key-not-found') candidate = { action: config.onKeyNotFound, why: `key not found: ${r.reason}` };
    else if (r.result === 'fail' || r.result === 'permerror' || r.result === 'policy') {
      const bad = config.onBadSignature;
      candidate =
        r.testing && (bad === 'reject' || bad === 'tempfail' || bad === 'discard')
          ? { action: 'accept', why: `bad signature from a key in testing mode (t=y): ${r.reason}` }
          : { action: bad, why: `bad signature: ${r.reason}` };
    }
    if (candidate && SEVERITY[candidate.action] > SEVERITY[worst.action]) worst = candidate;
  }
  return worst;
}

/**
 * Verification results of a message with a security concern (several From fields): a
 * signature that verified becomes "policy" (RFC 8601 §2.7.1: signed, but not acceptable to
 * the ADMD), so no consumer of the field takes it for a pass, and every result says why.
 */
function withConcern(results: VerificationResult[], concern: string): VerificationResult[] {
  return results.map((r) =>
    r.result === 'pass'
      ? { ...r, result: 'policy' as const, code: 'local-policy' as const, reason: concern }
      : { ...r, reason: r.reason ? `${r.reason}; ${concern}` : concern },
  );
}

/** SMTP reply text: printable ASCII only (a reason may hold bytes from the message). */
function replyText(text: string, max: number): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, max);
}

/** The reply for an action; quarantine needs the modifier (end of message only). */
function decide(action: Action, modifier: Modifier | undefined, reason: string, status: Status = DKIM_STATUS): Decision {
  switch (action) {
    case 'accept':
      return 'accept';
    case 'quarantine':
      modifier?.quarantine(replyText(`inkan: ${reason}`, 100));
      return 'accept';
    case 'discard':
      return 'discard';
    case 'tempfail':
      return { code: 451, extended: status[0], text: replyText(`DKIM: ${reason}`, 200) };
    case 'reject':
      return { code: 550, extended: status[1], text: replyText(`DKIM: ${reason}`, 200) };
  }
}

/** A message before MAIL or its first header field: nothing seen yet. */
function freshState(runtime: Runtime): MessageState {
  return {
    runtime,
    headers: [],
    headerCount: 0,
    headerBytes: 0,
    fromCount: 0,
    signatureFields: 0,
    forgedAr: [],
    arSeen: 0,
    role: 'none',
    why: '',
  };
}

/** OpenDKIM's PeerList: is the client one whose whole connection is let through, untouched? */
function isPeer(client: ConnectInfo, peerList: HostList | undefined): boolean {
  if (!peerList) return false;
  return client.family === 'inet' || client.family === 'inet6'
    ? peerList.matches(client.ip, client.hostname)
    : peerList.matches(undefined, client.hostname);
}

/**
 * One header field: counted against MaximumHeaders and MaximumHeaderBytes, kept while within
 * them (the first From always), and noted when it is a From, a signature or an
 * Authentication-Results field (forged when it claims our authserv-id or cannot be read).
 */
function addHeader(s: MessageState, name: string, value: Buffer, ctx: MilterContext): void {
  const { config } = s.runtime;
  s.headerCount++;
  s.headerBytes += rawFieldSize(name, value);
  if (!s.overLimit) {
    if (s.headerCount > config.maximumHeaders) s.overLimit = `the header section has more than ${config.maximumHeaders} fields`;
    else if (s.headerBytes > config.maximumHeaderBytes) s.overLimit = `the header section is over ${config.maximumHeaderBytes} bytes`;
    // Nothing is signed or verified past a limit: let the fields kept so far go.
    if (s.overLimit) s.headers = [];
  }
  const lower = name.toLowerCase();
  const isFrom = lower === 'from';
  if (!s.overLimit || (isFrom && !s.firstFrom)) {
    const field = rawField(name, value);
    if (!s.overLimit) s.headers.push(field);
    if (isFrom) s.firstFrom ??= field;
  }
  if (isFrom) s.fromCount++;
  else if (lower === 'dkim-signature' || lower === 'domainkey-signature') s.signatureFields++;
  else if (lower === 'authentication-results') {
    s.arSeen++;
    const parsed = parseAuthenticationResults(value.toString('latin1'));
    if (!parsed || sameAuthservId(parsed.authservId, authservIdOf(s.runtime, ctx))) s.forgedAr.push(s.arSeen);
  }
}

/** The security concern of the header section, if any: a limit passed, or several From fields. */
function noteHeaderConcern(s: MessageState): void {
  if (s.overLimit) {
    s.security = s.overLimit;
    s.securityStatus = LIMIT_STATUS;
  } else if (s.fromCount > 1) {
    // Several From fields break RFC 5322 and are how signed mail is replayed with another sender.
    s.security = `the message has ${s.fromCount} From fields (RFC 5322 allows one)`;
    s.securityStatus = FORMAT_STATUS;
  }
}

/** What end of headers knows about where a message comes from and whether it is to be signed. */
interface Origin {
  client: ConnectInfo | undefined;
  queueId: string;
  internal: boolean;
  /** {auth_authen}: the user the client authenticated as. */
  auth: string | undefined;
  /** An internal or authenticated client, in a mode that signs. */
  signing: boolean;
  /** The signing table's keys for the From address (none without one). */
  found: PlanLookup;
}

function originOf(s: MessageState, ctx: MilterContext): Origin {
  const { config, plan, internalHosts } = s.runtime;
  const client = ctx.client;
  const internal = isInternal(client, internalHosts, config);
  const auth = ctx.macros.get('{auth_authen}');
  return {
    client,
    queueId: ctx.macros.get('i') ?? '',
    internal,
    auth,
    signing: config.mode.sign && (internal || Boolean(auth)),
    found: s.from ? plan.lookup(s.from) : { keys: [] },
  };
}

/** On-Security for the concern at end of headers: the reply now if it ends the message, else undefined (decided at end of message). */
function securityAtEndOfHeaders(s: MessageState, origin: Origin, what: string): Decision | undefined {
  const { config, logger } = s.runtime;
  const action = config.onSecurity;
  const details = {
    queueId: forLog(origin.queueId),
    client: forLog(origin.client?.ip),
    from: forLog(s.from),
    role: s.role,
    security: s.security,
    action,
  };
  if (action === 'accept' || action === 'quarantine') return undefined;
  s.ended = decide(action, undefined, `not accepted: ${s.security}`, s.securityStatus);
  logger.warn(details, `${what}: ${s.security}; ${action} at end of headers`);
  return s.ended;
}

/** The signer for the keys of the From address, fed the header fields. */
function startSigner(s: MessageState, keys: SigningKey[]): Signer {
  const { config } = s.runtime;
  const headers = signedHeaderNames(config);
  const signer = new Signer(
    keys.map((k) => ({
      domain: k.domain,
      selector: k.selector,
      privateKey: k.privateKey,
      algorithm: k.algorithm,
      ...(k.identity ? { identity: k.identity } : {}),
      ...(config.signatureTtl > 0 ? { expiresIn: config.signatureTtl } : {}),
      canonicalization: config.canonicalization,
      ...(headers ? { headers } : {}),
      ...(config.oversignHeaders ? { oversignHeaders: config.oversignHeaders } : {}),
    })),
    { maxHeaderBytes: config.maximumHeaderBytes },
  );
  s.signer = signer;
  for (const h of s.headers) signer.header(h);
  signer.endOfHeaders();
  return signer;
}

/** The DKIM and DomainKeys verifier, bounded by the configured limits, fed the header fields. */
function startVerifier(s: MessageState): CombinedVerifier {
  const { config } = s.runtime;
  const verifier = new CombinedVerifier({
    resolver: s.runtime.resolver,
    // One cap for DKIM and DomainKeys signatures together, and one on RSA key size.
    maxSignatures: config.maximumSignaturesToVerify,
    maxKeyBits: config.maximumKeyBits,
    dkim: {
      minKeyBits: config.minimumKeyBits,
      maxSignatures: config.maximumSignaturesToVerify,
      maxHeaderFields: config.maximumHeaders,
      maxHeaderBytes: config.maximumHeaderBytes,
    },
    domainKeys: { minKeyBits: config.minimumKeyBits, maxHeaderFields: config.maximumHeaders, maxHeaderBytes: config.maximumHeaderBytes },
  });
  s.verifier = verifier;
  for (const h of s.headers) verifier.header(h);
  verifier.endOfHeaders();
  return verifier;
}

/** A message to verify: log what is odd about its sender, apply On-Security now if it ends the message, else start the verifier. */
function verifyRole(s: MessageState, origin: Origin): Decision | undefined {
  const { externalIgnore, logger } = s.runtime;
  const { client, signing } = origin;
  s.role = 'verify';
  s.why = signing ? `no signing key for ${s.from ?? 'a message without a From address'}` : 'external client';
  if (signing && !s.from) {
    // Nothing to choose a key by: DKIM must sign From (RFC 6376 §5.4), and such mail names no domain of ours.
    logger.warn(
      { queueId: forLog(origin.queueId), client: forLog(client?.ip), fromField: forLog(s.firstFrom?.raw.toString('latin1')) },
      'not signed: no From address',
    );
  }
  if (!signing && s.from && origin.found.keys.length > 0 && !externalIgnore?.matches(client?.ip, client?.hostname)) {
    logger.warn({ client: forLog(client?.ip), from: forLog(s.from) }, `external host sent mail as ${forLog(domainOf(s.from))}`);
  }
  if (s.security) {
    const now = securityAtEndOfHeaders(s, origin, 'not verified');
    if (now !== undefined) return now;
  }
  if (s.overLimit) return undefined;
  startVerifier(s);
  return undefined;
}

/**
 * End of headers: the role of the message (sign, hold, refused, verify or none) from its
 * client and From address, and its signer or verifier started. The reply when On-Security
 * ends the message here, else undefined.
 */
function chooseRole(s: MessageState, ctx: MilterContext): Decision | undefined {
  const { config } = s.runtime;
  noteHeaderConcern(s);
  s.from = s.firstFrom ? fromAddress(headerValue(s.firstFrom)) : undefined;
  const origin = originOf(s, ctx);
  const { signing, found } = origin;
  const keys = found.keys;
  if (signing && s.security && (keys.length > 0 || found.hold)) {
    // Never signed: a key chosen from one From would vouch for whatever the other says.
    s.role = 'refused';
    s.why = `not signed: ${s.security}`;
    return securityAtEndOfHeaders(s, origin, 'not signed');
  }
  if (signing && keys.length === 0 && found.hold) {
    // Mail that should be signed never passes unsigned: the MTA keeps it and retries.
    s.role = 'hold';
    s.why = found.hold;
  } else if (signing && keys.length > 0) {
    s.role = 'sign';
    s.why = `${origin.internal ? 'internal client' : `authenticated as ${origin.auth}`}, keys for ${s.from}`;
    startSigner(s, keys);
  } else if (config.mode.verify) {
    return verifyRole(s, origin);
  } else {
    s.why = 'nothing to do in this mode';
  }
  return undefined;
}

/** One body chunk into the signer or verifier; a failure is kept for end of message. */
function addBody(s: MessageState, chunk: Buffer): void {
  if (s.failure) return;
  try {
    s.signer?.body(chunk);
    s.verifier?.body(chunk);
  } catch (error) {
    s.failure = error as Error;
  }
}

/** End of message in progress: the modifier, the log line being built, and the step now taken (for the log and the failure actions). */
interface Ending {
  s: MessageState;
  modifier: Modifier;
  ctx: MilterContext;
  log: Record<string, unknown>;
  step: string;
}

/** Mail that should be signed without a usable key: tempfailed. */
function endHeld({ s, modifier, log }: Ending): Decision {
  const { logger, metrics } = s.runtime;
  metrics?.held.inc();
  log.action = 'tempfail';
  log.why = forLog(s.why);
  logger.warn(log, 'not signed: no usable key; tempfailed');
  return decide('tempfail', modifier, 'no signing key available, try again later');
}

/** Mail refused signing for a security concern: On-Security accept or quarantine (the others ended the message at end of headers). */
function endRefused(e: Ending): Decision {
  const { s, modifier, log } = e;
  const { config, logger } = s.runtime;
  log.action = config.onSecurity;
  logger.warn(log, `not signed: ${s.security}; passed unsigned because On-Security is ${config.onSecurity}`);
  e.step = 'applying On-Security';
  return decide(config.onSecurity, modifier, `not signed: ${s.security}`, s.securityStatus);
}

/** The signatures made and inserted in front of the message, all of them or none. */
async function endSigned(e: Ending, signer: Signer): Promise<Decision> {
  const { s, modifier, ctx, log } = e;
  const { logger, metrics } = s.runtime;
  e.step = 'making the signatures';
  const fields = await signer.finish();
  e.step = 'inserting DKIM-Signature';
  // Every value is checked before the first is inserted: all signatures or none.
  const ready = fields.map((f) => ({ name: f.name, value: safeValueForMta(f.name, f.value, ctx) }));
  for (const f of ready.reverse()) modifier.insertHeader(0, f.name, f.value);
  log.signatures = fields.map((f) => /\bs=([^;\s]+)/.exec(f.value)?.[1]);
  metrics?.signed.inc(fields.length);
  logger.info(log, 'signed');
  return 'accept';
}

/**
 * What the Authentication-Results field says: the results, or with a security concern a
 * verdict that is never a pass ("policy" for a signed message over a limit, which was not
 * verified; "none" for one without signatures); a "none" entry when AlwaysAddARHeader asks.
 */
function arEntries(s: MessageState, results: VerificationResult[]): (VerificationResult | AuthResultEntry)[] {
  const { config } = s.runtime;
  if (s.security) {
    // Nothing was verified past a limit: "policy" if the message was signed (RFC 8601 §2.7.1), "none" if not.
    if (s.overLimit)
      return [{ method: 'dkim', result: s.signatureFields > 0 ? 'policy' : 'none', reason: `not verified: ${s.security}`, properties: [] }];
    return results.length > 0 ? withConcern(results, s.security) : [{ method: 'dkim', result: 'none', reason: s.security, properties: [] }];
  }
  if (results.length === 0 && config.alwaysAddArHeader) return [{ method: 'dkim', result: 'none', properties: [] }];
  return results;
}

/** The signatures checked, an Authentication-Results field inserted, and the action the results (and any security concern) call for. */
async function endVerified(e: Ending): Promise<Decision> {
  const { s, modifier, ctx, log } = e;
  const { config, logger, metrics } = s.runtime;
  const authservId = authservIdOf(s.runtime, ctx);
  e.step = 'verifying';
  let results: VerificationResult[] = [];
  if (s.verifier) {
    const { dkim, domainkeys } = await s.verifier.finish();
    results = [...dkim, ...domainkeys];
  }
  for (const r of results) metrics?.verified.inc({ method: r.method, result: r.result });
  let verdict = verdictAction(config, results);
  if (s.security && SEVERITY[config.onSecurity] >= SEVERITY[verdict.action]) verdict = { action: config.onSecurity, why: s.security };
  const entries = arEntries(s, results);
  if (entries.length > 0) {
    e.step = 'inserting Authentication-Results';
    const value = formatAuthenticationResults(authservId, entries, { newline: '\n' });
    modifier.insertHeader(0, 'Authentication-Results', safeValueForMta('Authentication-Results', value, ctx));
  }
  log.results = results.map((r) => ({
    method: r.method,
    d: forLog(r.domain),
    s: forLog(r.selector),
    result: r.result,
    code: r.code,
    ...(r.reason ? { reason: forLog(r.reason) } : {}),
  }));
  log.action = verdict.action;
  if (verdict.action !== 'accept') log.actionWhy = forLog(verdict.why);
  if (s.security) logger.warn(log, `verified: ${s.security}; On-Security is ${config.onSecurity}`);
  else logger.info(log, 'verified');
  e.step = 'applying the verdict';
  return decide(verdict.action, modifier, verdict.why, s.security && verdict.why === s.security ? s.securityStatus : DKIM_STATUS);
}

/**
 * End of message went wrong: a message or key that cannot be signed gets On-SignatureError,
 * anything else On-InternalError (tempfail when the action cannot be taken).
 */
function endFailed({ s, modifier, log, step }: Ending, error: unknown): Decision {
  const { config, logger, metrics } = s.runtime;
  log.failed = step;
  log.error = forLog((error as Error).message);
  if (s.role === 'sign' && (step === 'reading the message' || step === 'making the signatures') && DkimError.isInstance(error)) {
    // The message or the key cannot be signed (OpenDKIM's On-SignatureError); never passed on unsigned unless configured so.
    log.action = config.onSignatureError;
    logger.error(log, `not signed: ${forLog(error.message)}; On-SignatureError is ${config.onSignatureError}`);
    try {
      return decide(config.onSignatureError, modifier, `cannot sign: ${error.message}`, SIGN_STATUS);
    } catch {
      return decide('tempfail', undefined, 'cannot sign, try again later');
    }
  }
  metrics?.errors.inc();
  log.action = config.onInternalError;
  logger.error(log, `internal error while ${step}; On-InternalError is ${config.onInternalError}`);
  try {
    return decide(config.onInternalError, modifier, 'internal error, try again later');
  } catch {
    // quarantine refused by the modifier (not negotiated): keep the message
    return decide('tempfail', undefined, 'internal error, try again later');
  }
}

/** End of message: forged Authentication-Results removed, then the message held, refused, signed, verified or passed through. */
async function endMessage(s: MessageState, modifier: Modifier, ctx: MilterContext): Promise<Decision> {
  const { config, logger } = s.runtime;
  // An MTA that goes on after our answer at end of headers gets the same answer.
  if (s.ended !== undefined) return s.ended;
  const log: Record<string, unknown> = {
    queueId: forLog(ctx.macros.get('i') ?? ''),
    client: forLog(ctx.client?.ip),
    from: forLog(s.from),
    role: s.role,
  };
  if (config.logWhy) log.why = forLog(s.why);
  if (s.security) log.security = s.security;
  const e: Ending = { s, modifier, ctx, log, step: 'removing forged Authentication-Results' };
  try {
    for (const index of [...s.forgedAr].reverse()) modifier.deleteHeader('Authentication-Results', index);
    if (s.forgedAr.length > 0) log.removedAuthenticationResults = s.forgedAr.length;
    e.step = 'reading the message';
    if (s.failure) throw s.failure;
    if (s.role === 'hold') return endHeld(e);
    if (s.role === 'refused') return endRefused(e);
    if (s.role === 'sign' && s.signer) return await endSigned(e, s.signer);
    if (s.role === 'verify') return await endVerified(e);
    logger.info(log, 'passed through');
    return 'accept';
  } catch (error) {
    return endFailed(e, error);
  }
}

/**
 * The DKIM filter: one handler per MTA connection. Decides at end of headers whether a
 * message is signed (internal or authenticated client, From domain with keys) or verified,
 * streams the body into the signer or verifier, and at end of message inserts the
 * signatures or the Authentication-Results field, removing forged ones that claim our
 * authserv-id.
 *
 * Hostile messages: header fields are kept up to MaximumHeaders / MaximumHeaderBytes (past
 * them only counters go on); a message over a limit or with several From fields is never
 * signed and gets On-Security, answered at end of headers when that ends the message
 * (tempfail, reject, discard: the MTA then never sends the body).
 */
export function createFilter(current: () => Runtime): HandlerFactory {
  return (): MilterHandler => {
    let state: MessageState | undefined;
    const fresh = (): MessageState => freshState(current());
    // OpenDKIM's PeerList lets a whole connection through untouched. Without one there is nothing
    // to decide at connect, and a handler without `connect` lets the session ask the MTA for no
    // reply to it (SMFIP_NR_CONN, over unix sockets): one round trip less per connection.
    const peerList = current().peerList;
    return {
      ...(peerList ? { connect: (client: ConnectInfo) => (isPeer(client, peerList) ? 'accept' : undefined) } : {}),
      mail() {
        state = fresh();
      },
      header(name, value, ctx) {
        state ??= fresh();
        addHeader(state, name, value, ctx);
      },
      endOfHeaders(ctx) {
        state ??= fresh();
        const s = state;
        try {
          return chooseRole(s, ctx);
        } catch (error) {
          s.failure = error as Error;
        }
        return undefined;
      },
      body(chunk) {
        if (state) addBody(state, chunk);
      },
      endOfMessage(modifier, ctx) {
        const s = state ?? fresh();
        state = undefined;
        return endMessage(s, modifier, ctx);
      },
      abort() {
        state = undefined;
      },
    };
  };
}
