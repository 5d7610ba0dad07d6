import { isIP } from 'node:net';
import { MilterError } from './errors.js';

/** Where a filter listens (or an MTA connects). */
export type SocketSpec =
  | {
      kind: 'unix';
      path: string;
      /** Permission bits of the socket file when listening (the MTA's user must be able to write). Default 0o660. */
      mode?: number;
      /** Group (name or gid) of the socket file when listening, e.g. "postfix". */
      group?: string | number;
    }
  | { kind: 'inet'; host: string; port: number }
  | { kind: 'inet6'; host: string; port: number };

export type SocketSpecDialect = 'milter' | 'postfix';

const stage = 'socket-spec';

function parsePort(text: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new MilterError(stage, `"${spec}": port "${text}" is not a number`);
  const port = Number(text);
  if (port > 65535) throw new MilterError(stage, `"${spec}": port ${port} is out of range`);
  return port;
}

function inetSpec(host: string, port: number, spec: string, forceV6: boolean): SocketSpec {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare === '') throw new MilterError(stage, `"${spec}": empty host`);
  if (/[\s/@[\]]/.test(bare)) throw new MilterError(stage, `"${spec}": invalid host "${host}"`);
  const v6 = forceV6 || bare.includes(':');
  if (v6 && bare.includes(':') && isIP(bare) !== 6) throw new MilterError(stage, `"${spec}": "${bare}" is not an IPv6 address`);
  return v6 ? { kind: 'inet6', host: bare, port } : { kind: 'inet', host: bare, port };
}

/**
 * Parse a socket spec in either dialect, one grammar:
 * - milter/sendmail: `local:/path`, `unix:/path`, `inet:port@host`, `inet:port` (all
 *   interfaces), `inet6:port@host`, `inet6:port`;
 * - Postfix: `unix:/path`, `inet:host:port`, `inet:[::1]:port`.
 * An `inet:` spec whose host is an IPv6 address becomes kind 'inet6'.
 */
export function parseSocketSpec(text: string): SocketSpec {
  const spec = text.trim();
  const colon = spec.indexOf(':');
  if (colon <= 0) throw new MilterError(stage, `"${text}" has no transport (expected unix:, local:, inet: or inet6:)`);
  const transport = spec.slice(0, colon).toLowerCase();
  const rest = spec.slice(colon + 1);
  if (transport === 'unix' || transport === 'local') {
    if (rest === '') throw new MilterError(stage, `"${text}": empty socket path`);
    if (rest.includes('\0')) throw new MilterError(stage, `"${text}": socket path contains NUL`);
    return { kind: 'unix', path: rest };
  }
  if (transport !== 'inet' && transport !== 'inet6') {
    throw new MilterError(stage, `"${text}": unknown transport "${transport}" (expected unix, local, inet or inet6)`);
  }
  const v6 = transport === 'inet6';
  const at = rest.indexOf('@');
  if (at >= 0) {
    // milter style: port@host
    const port = parsePort(rest.slice(0, at), text);
    return inetSpec(rest.slice(at + 1), port, text, v6);
  }
  if (/^\d+$/.test(rest)) {
    return v6 ? { kind: 'inet6', host: '::', port: parsePort(rest, text) } : { kind: 'inet', host: '0.0.0.0', port: parsePort(rest, text) };
  }
  // Postfix style: host:port or [host]:port
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0 || rest[close + 1] !== ':') throw new MilterError(stage, `"${text}": expected [host]:port`);
    return inetSpec(rest.slice(0, close + 1), parsePort(rest.slice(close + 2), text), text, v6);
  }
  const last = rest.lastIndexOf(':');
  if (last <= 0) throw new MilterError(stage, `"${text}": expected port@host or host:port`);
  return inetSpec(rest.slice(0, last), parsePort(rest.slice(last + 1), text), text, v6);
}

/** A spec as text: `toSocketSpec` accepts both forms. */
export function toSocketSpec(spec: SocketSpec | string): SocketSpec {
  return typeof spec === 'string' ? parseSocketSpec(spec) : spec;
}

/**
 * Print a spec in one dialect: milter (`unix:/p`, `inet:port@host`, `inet6:port@host`) or
 * Postfix (`unix:/p`, `inet:host:port`, `inet:[v6]:port`).
 */
export function formatSocketSpec(input: SocketSpec | string, dialect: SocketSpecDialect = 'milter'): string {
  const spec = toSocketSpec(input);
  switch (spec.kind) {
    case 'unix':
      return `unix:${spec.path}`;
    case 'inet':
      return dialect === 'milter' ? `inet:${spec.port}@${spec.host}` : `inet:${spec.host}:${spec.port}`;
    case 'inet6':
      return dialect === 'milter' ? `inet6:${spec.port}@${spec.host}` : `inet:[${spec.host}]:${spec.port}`;
  }
}

/**
 * The main.cf line that makes Postfix use a filter at this spec, e.g.
 * `smtpd_milters = inet:127.0.0.1:8891`. (Under Debian's chrooted smtpd, a unix path is
 * relative to /var/spool/postfix.)
 */
export function formatPostfixMilter(spec: SocketSpec | string, parameter: 'smtpd_milters' | 'non_smtpd_milters' = 'smtpd_milters'): string {
  return `${parameter} = ${formatSocketSpec(spec, 'postfix')}`;
}

export interface SendmailFilterFlags {
  /** F=: what sendmail does when the filter is unavailable: R reject, T tempfail, 4 reply 421; none: pass the mail. */
  onFailure?: 'R' | 'T' | '4';
  /** T=: timeouts, e.g. { connect: '5m', send: '10s', read: '10s', end: '5m' }. */
  timeouts?: { connect?: string; send?: string; read?: string; end?: string };
}

/**
 * The sendmail.mc line for a filter, e.g.
 * ``INPUT_MAIL_FILTER(`inkan', `S=inet:8891@127.0.0.1, F=T, T=R:30s')``.
 */
export function formatSendmailFilter(name: string, spec: SocketSpec | string, flags: SendmailFilterFlags = {}): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new MilterError(stage, `filter name "${name}" must be letters, digits, '_', '.' or '-'`);
  const s = toSocketSpec(spec);
  const socket = s.kind === 'unix' ? `local:${s.path}` : formatSocketSpec(s, 'milter');
  const equates = [`S=${socket}`];
  if (flags.onFailure) equates.push(`F=${flags.onFailure}`);
  const t = flags.timeouts;
  if (t) {
    const parts: string[] = [];
    for (const [letter, value] of [
      ['C', t.connect],
      ['S', t.send],
      ['R', t.read],
      ['E', t.end],
    ] as const) {
      if (value === undefined) continue;
      if (!/^\d+[smhd]?$/.test(value)) throw new MilterError(stage, `timeout "${value}" is not a sendmail time (e.g. 10s, 5m)`);
      parts.push(`${letter}:${value}`);
    }
    if (parts.length > 0) equates.push(`T=${parts.join(';')}`);
  }
  return `INPUT_MAIL_FILTER(\`${name}', \`${equates.join(', ')}')`;
}
