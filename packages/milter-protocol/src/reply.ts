import { MilterError } from './errors.js';

/** A custom SMTP reply for SMFIR_REPLYCODE. */
export interface SmtpReply {
  /** 4xx (temporary) or 5xx (permanent); the class decides between tempfail and reject. */
  code: number;
  /** Enhanced status code "x.y.z"; its class must match the reply code's first digit. */
  extended?: string;
  /** One line, or several for a multi-line reply. No CR or LF inside a line. Default: none. */
  text?: string | readonly string[];
}

const MAX_LINES = 32;
const MAX_LINE = 980;

/**
 * The SMFIR_REPLYCODE text for a reply: "550 5.7.1 text", multi-line as
 * "550-5.7.1 first\r\n550 5.7.1 last". Every '%' is doubled (sendmail rejects a lone '%').
 * Throws MilterError(stage) on an invalid reply, so a handler bug cannot desync the MTA.
 */
export function formatSmtpReply(reply: SmtpReply, stage = 'reply'): string {
  const { code, extended } = reply;
  if (!Number.isInteger(code) || code < 400 || code > 599) {
    throw new MilterError(stage, `SMTP reply code must be 4xx or 5xx, not ${code}`);
  }
  const cls = Math.floor(code / 100);
  if (extended !== undefined) {
    const m = /^([245])\.(\d{1,3})\.(\d{1,3})$/.exec(extended);
    if (!m) throw new MilterError(stage, `enhanced status code "${extended}" is not of the form x.y.z`);
    if (Number(m[1]) !== cls) throw new MilterError(stage, `enhanced status code ${extended} does not match reply code ${code}`);
  }
  const raw = reply.text === undefined ? [''] : typeof reply.text === 'string' ? [reply.text] : [...reply.text];
  const lines = raw.length === 0 ? [''] : raw;
  if (lines.length > MAX_LINES) throw new MilterError(stage, `SMTP reply has ${lines.length} lines; at most ${MAX_LINES} are allowed`);
  const out: string[] = [];
  lines.forEach((line, i) => {
    if (/[\r\n\0]/.test(line)) throw new MilterError(stage, 'SMTP reply text must not contain CR, LF or NUL (pass several lines instead)');
    if (line.length > MAX_LINE) throw new MilterError(stage, `SMTP reply line is longer than ${MAX_LINE} characters`);
    const sep = i === lines.length - 1 ? ' ' : '-';
    const parts = [extended, line.replace(/%/g, '%%')].filter((p): p is string => p !== undefined && p !== '');
    out.push(`${code}${sep}${parts.join(' ')}`.trimEnd());
  });
  return out.join('\r\n');
}

/** Parse SMFIR_REPLYCODE text back into code, enhanced code and lines (with '%%' undone). */
export function parseSmtpReply(text: string): SmtpReply {
  const lines = text.split(/\r?\n/);
  let code = 0;
  let extended: string | undefined;
  const out: string[] = [];
  for (const line of lines) {
    const m = /^([45]\d\d)[- ]?(.*)$/.exec(line);
    if (!m) throw new MilterError('reply', `"${line}" is not an SMTP reply line`);
    code = Number(m[1]);
    let rest = m[2] as string;
    const e = /^([245]\.\d{1,3}\.\d{1,3})(?: |$)(.*)$/.exec(rest);
    if (e) {
      extended = e[1];
      rest = e[2] as string;
    }
    out.push(rest.replace(/%%/g, '%'));
  }
  const reply: SmtpReply = { code, text: out.length === 1 ? (out[0] as string) : out };
  if (extended !== undefined) reply.extended = extended;
  return reply;
}
