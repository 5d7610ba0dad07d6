import { Buffer } from 'node:buffer';
import {
  type AuthResultEntry,
  type KeyResolver,
  type HeaderField,
  type VerificationResult,
  Signer,
  formatAuthenticationResults,
  parseAuthenticationResults,
} from '@inkan/dkim-core';
import { CombinedVerifier } from '@inkan/domainkeys-verify';
import { type HandlerFactory, type MilterContext, type MilterHandler, type Modifier, ProtocolFlags } from '@inkan/milter-protocol';
import type { Logger } from 'pino';
import { domainOf, fromAddress } from './address.js';
import type { Action, Config } from './config/options.js';
import type { SharedTables } from './config/stores/store-plan.js';
import type { SigningPlan } from './config/tables.js';
import type { HostList } from './hosts.js';
import type { Metrics } from './metrics.js';

/** Everything a message needs; replaced as a whole on reload (SIGHUP). */
export interface Runtime {
  config: Config;
  plan: SigningPlan;
  internalHosts: HostList;
  externalIgnore?: HostList;
  resolver: KeyResolver;
  authservId: string;
  logger: Logger;
  metrics?: Metrics;
  /** The shared store the tables come from (plan and maybe internalHosts then follow it). */
  tables?: SharedTables;
}

/** hold: should be signed, but no usable key is known now (tables not loaded, or bad rows): tempfail. */
type Role = 'sign' | 'verify' | 'hold' | 'none';

interface MessageState {
  runtime: Runtime;
  headers: HeaderField[];
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
}

const SEVERITY: Record<Action, number> = { accept: 0, quarantine: 1, discard: 2, tempfail: 3, reject: 4 };
const LF_ONLY = /(?<!\r)\n/g;

/** A header value from the MTA (folded with bare LF, leading space kept) as raw field bytes. */
function rawField(name: string, value: Buffer): HeaderField {
  const text = value.toString('latin1').replace(LF_ONLY, '\r\n');
  return { name, raw: Buffer.from(`${name}:${text}\r\n`, 'latin1') };
}

/** A field value for the MTA: folded with LF, leading space only if the MTA will not add one. */
function valueForMta(value: string, ctx: MilterContext): string {
  const v = value.replace(/\r\n/g, '\n');
  return ctx.options.protocol & ProtocolFlags.HeaderLeadingSpace ? (v.startsWith(' ') ? v : ` ${v}`) : v.replace(/^ /, '');
}

/** Which configured action the verification results call for. */
export function verdictAction(config: Config, results: VerificationResult[]): { action: Action; why: string } {
  if (results.length === 0) return { action: config.onNoSignature, why: 'no signature' };
  if (results.some((r) => r.result === 'pass')) return { action: 'accept', why: 'a signature passed' };
  let worst: { action: Action; why: string } = { action: 'accept', why: 'no passing signature' };
  for (const r of results) {
    let candidate: { action: Action; why: string } | undefined;
    if (r.result === 'fail') candidate = { action: config.onBadSignature, why: `bad signature: ${r.reason}` };
    else if (r.result === 'temperror') candidate = { action: config.onDnsError, why: `DNS error: ${r.reason}` };
    else if (r.result === 'permerror' && /no key record|revoked/.test(r.reason ?? '')) candidate = { action: config.onKeyNotFound, why: `key not found: ${r.reason}` };
    else if (r.result === 'permerror' || r.result === 'policy') candidate = { action: config.onSignatureError, why: `signature error: ${r.reason}` };
    if (candidate && SEVERITY[candidate.action] > SEVERITY[worst.action]) worst = candidate;
  }
  return worst;
}

function decide(action: Action, modifier: Modifier, reason: string) {
  switch (action) {
    case 'accept':
      return 'accept' as const;
    case 'quarantine':
      modifier.quarantine(`inkan: ${reason}`.slice(0, 100));
      return 'accept' as const;
    case 'discard':
      return 'discard' as const;
    case 'tempfail':
      return { code: 451, extended: '4.7.5', text: `DKIM: ${reason}`.slice(0, 200) };
    case 'reject':
      return { code: 550, extended: '5.7.20', text: `DKIM: ${reason}`.slice(0, 200) };
  }
}

/**
 * The DKIM filter: one handler per MTA connection. Decides at end of headers whether a
 * message is signed (internal or authenticated client, From domain with keys) or verified,
 * streams the body into the signer or verifier, and at end of message inserts the
 * signatures or the Authentication-Results field, removing forged ones that claim our
 * authserv-id.
 */
export function createFilter(current: () => Runtime): HandlerFactory {
  return (): MilterHandler => {
    let state: MessageState | undefined;
    const fresh = (): MessageState => ({ runtime: current(), headers: [], forgedAr: [], arSeen: 0, role: 'none', why: '' });

    return {
      mail() {
        state = fresh();
      },

      header(name, value) {
        state ??= fresh();
        const field = rawField(name, value);
        state.headers.push(field);
        if (name.toLowerCase() === 'authentication-results') {
          state.arSeen++;
          const parsed = parseAuthenticationResults(value.toString('latin1'));
          const ours = state.runtime.authservId.toLowerCase();
          if (!parsed || parsed.authservId.toLowerCase() === ours) state.forgedAr.push(state.arSeen);
        }
      },

      endOfHeaders(ctx) {
        state ??= fresh();
        const s = state;
        const { config, plan, internalHosts, externalIgnore, logger } = s.runtime;
        try {
          const fromFields = s.headers.filter((h) => h.name.toLowerCase() === 'from');
          // Several From fields break RFC 5322 and are how signed mail is replayed with another sender.
          if (fromFields.length > 1) s.security = `${fromFields.length} From fields`;
          const fromField = fromFields[0];
          s.from = fromField ? fromAddress(fromField.raw.toString('latin1').slice(fromField.name.length + 1)) : undefined;
          const client = ctx.client;
          const local = !client || client.family === 'unix' || client.family === 'unknown';
          const internal = local || internalHosts.matches(client?.ip, client?.hostname);
          const auth = ctx.macros.get('{auth_authen}');
          const found = s.from ? plan.lookup(s.from) : { keys: [] };
          const keys = found.keys;
          if (config.mode.sign && (internal || auth) && keys.length === 0 && found.hold) {
            // Mail that should be signed never passes unsigned: the MTA keeps it and retries.
            s.role = 'hold';
            s.why = found.hold;
          } else if (config.mode.sign && (internal || auth) && keys.length > 0) {
            s.role = 'sign';
            s.why = `${internal ? 'internal client' : `authenticated as ${auth}`}, keys for ${s.from}`;
            s.signer = new Signer(
              keys.map((k) => ({
                domain: k.domain,
                selector: k.selector,
                privateKey: k.privateKey,
                algorithm: k.algorithm,
                canonicalization: config.canonicalization,
                ...(config.signHeaders ? { headers: config.signHeaders } : {}),
                ...(config.oversignHeaders ? { oversignHeaders: config.oversignHeaders } : {}),
              })),
            );
            for (const h of s.headers) s.signer.header(h);
            s.signer.endOfHeaders();
          } else if (config.mode.verify) {
            s.role = 'verify';
            s.why = internal || auth ? `no signing key for ${s.from ?? 'a message without From'}` : 'external client';
            if (!internal && !auth && s.from && keys.length > 0 && !externalIgnore?.matches(client?.ip, client?.hostname)) {
              logger.warn({ client: client?.ip, from: s.from }, `external host sent mail as ${domainOf(s.from)}`);
            }
            s.verifier = new CombinedVerifier({
              resolver: s.runtime.resolver,
              dkim: { minKeyBits: config.minimumKeyBits, maxSignatures: config.maximumSignaturesToVerify },
              domainKeys: { minKeyBits: config.minimumKeyBits },
            });
            for (const h of s.headers) s.verifier.header(h);
            s.verifier.endOfHeaders();
          } else {
            s.why = 'nothing to do in this mode';
          }
        } catch (error) {
          s.failure = error as Error;
        }
      },

      body(chunk) {
        const s = state;
        if (!s || s.failure) return;
        try {
          s.signer?.body(chunk);
          s.verifier?.body(chunk);
        } catch (error) {
          s.failure = error as Error;
        }
      },

      async endOfMessage(modifier, ctx) {
        const s = state ?? fresh();
        state = undefined;
        const { config, logger, authservId, metrics } = s.runtime;
        const queueId = ctx.macros.get('i') ?? '';
        const log: Record<string, unknown> = { queueId, client: ctx.client?.ip, from: s.from, role: s.role };
        if (config.logWhy) log.why = s.why;
        for (const index of [...s.forgedAr].reverse()) modifier.deleteHeader('Authentication-Results', index);
        if (s.forgedAr.length > 0) log.removedAuthenticationResults = s.forgedAr.length;
        try {
          if (s.failure) throw s.failure;
          if (s.role === 'hold') {
            metrics?.held.inc();
            log.action = 'tempfail';
            log.why = s.why;
            logger.warn(log, 'not signed: no usable key; tempfailed');
            return decide('tempfail', modifier, 'no signing key available, try again later');
          }
          if (s.role === 'sign' && s.signer) {
            const fields = await s.signer.finish();
            for (const f of [...fields].reverse()) modifier.insertHeader(0, f.name, valueForMta(f.value, ctx));
            log.signatures = fields.map((f) => /\bs=([^;\s]+)/.exec(f.value)?.[1]);
            metrics?.signed.inc(fields.length);
            logger.info(log, 'signed');
            return 'accept';
          }
          if (s.role === 'verify' && s.verifier) {
            const { dkim, domainkeys } = await s.verifier.finish();
            const results = [...dkim, ...domainkeys];
            const entries: (VerificationResult | AuthResultEntry)[] =
              results.length === 0 && config.alwaysAddArHeader ? [{ method: 'dkim', result: 'none', properties: [] }] : results;
            if (entries.length > 0) {
              const value = formatAuthenticationResults(authservId, entries, { newline: '\n' });
              modifier.insertHeader(0, 'Authentication-Results', valueForMta(value, ctx));
            }
            for (const r of results) metrics?.verified.inc({ method: r.method, result: r.result });
            let verdict = verdictAction(config, results);
            if (s.security && SEVERITY[config.onSecurity] > SEVERITY[verdict.action]) verdict = { action: config.onSecurity, why: `security: ${s.security}` };
            log.results = results.map((r) => ({ method: r.method, d: r.domain, s: r.selector, result: r.result, ...(r.reason ? { reason: r.reason } : {}) }));
            log.action = verdict.action;
            if (verdict.action !== 'accept') log.actionWhy = verdict.why;
            logger.info(log, 'verified');
            return decide(verdict.action, modifier, verdict.why);
          }
          logger.info(log, 'passed through');
          return 'accept';
        } catch (error) {
          metrics?.errors.inc();
          log.error = (error as Error).message;
          log.action = config.onInternalError;
          logger.error(log, 'internal error');
          return decide(config.onInternalError, modifier, 'internal error, try again later');
        }
      },

      abort() {
        state = undefined;
      },
    };
  };
}
