import type { AuthResult, VerificationResult } from './result.js';

/** One property such as header.d=example.org. */
export interface AuthResultProperty {
  ptype: string;
  property: string;
  value: string;
}

/** One method's result (resinfo) in an Authentication-Results field. */
export interface AuthResultEntry {
  method: string;
  methodVersion?: number;
  result: string;
  reason?: string;
  /** Comments after the result, without parentheses. */
  comments?: string[];
  properties: AuthResultProperty[];
}

export interface AuthenticationResults {
  authservId: string;
  version?: number;
  /** Empty for "authserv-id; none" (nothing was checked). */
  results: AuthResultEntry[];
}

/** RFC 2045 token characters: any printable except SP and tspecials. */
const TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$/;
/** [local-part] "@" domain-name, as RFC 8601 allows unquoted. */
const ADDRESS = /^(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+)?@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/** Control characters (RFC 5234 CTL): CR, LF, NUL and the rest never go into a header field we write. */
const CTL = /[\x00-\x1f\x7f]/;
const CTLS = /[\x00-\x1f\x7f]/g;
/** A method, result, ptype or property name (RFC 8601 Keyword, with "." for property). */
const KEYWORD_TEXT = /^[A-Za-z0-9_.-]+$/;

/** Free text (reason, comments, authserv-id) with each control character made a "?". */
function sanitize(text: string): string {
  return text.replace(CTLS, '?');
}

function quote(value: string): string {
  return `"${sanitize(value).replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function formatValue(value: string): string {
  return TOKEN.test(value) || ADDRESS.test(value) ? value : quote(value);
}

function formatComment(text: string): string {
  return `(${sanitize(text).replace(/[\\()]/g, (c) => `\\${c}`)})`;
}

/** A keyword as given, or "?"-sanitized text in place of one that is not (never a CTL). */
function keyword(text: string): string {
  return KEYWORD_TEXT.test(text) ? text : sanitize(text).replace(/[^A-Za-z0-9_.-]/g, '-') || 'unknown';
}

/** The shortest prefix of each b= (at least 8 characters) that tells them apart. */
function shortB(all: (string | undefined)[], b: string): string {
  let n = Math.min(8, b.length);
  while (n < b.length && all.some((other) => other !== undefined && other !== b && other.startsWith(b.slice(0, n)))) n++;
  return b.slice(0, n);
}

/**
 * Turn verification results into A-R entries: "dkim=pass (2048-bit key) header.d=...
 * header.i=... header.s=... header.a=... header.b=...", with "test mode" noted for
 * t=y keys and reason="..." on anything but pass.
 */
export function toAuthResultEntries(results: VerificationResult[]): AuthResultEntry[] {
  const allB = results.map((r) => r.headerB);
  return results.map((r) => {
    const comments: string[] = [];
    const notes: string[] = [];
    if (r.keyBits !== undefined) notes.push(`${r.keyBits}-bit key`);
    if (r.testing) notes.push('test mode');
    if (notes.length > 0) comments.push(notes.join('; '));
    const properties: AuthResultProperty[] = [];
    const add = (ptype: string, property: string, value: string | undefined) => {
      if (value !== undefined && value !== '') properties.push({ ptype, property, value });
    };
    if (r.method === 'domainkeys') {
      add('header', r.identityHeader ?? 'from', r.identity);
      add('header', 'd', r.domain);
      add('header', 's', r.selector);
      add('header', 'b', r.headerB ? shortB(allB, r.headerB) : undefined);
    } else {
      add('header', 'd', r.domain);
      add('header', 'i', r.identity);
      add('header', 's', r.selector);
      add('header', 'a', r.algorithm);
      add('header', 'b', r.headerB ? shortB(allB, r.headerB) : undefined);
    }
    const entry: AuthResultEntry = { method: r.method, result: r.result, properties };
    if (comments.length > 0) entry.comments = comments;
    if (r.reason !== undefined && r.result !== 'pass') entry.reason = r.reason;
    return entry;
  });
}

export interface FormatOptions {
  /** A-R version after the authserv-id (omitted when 1 or absent). */
  version?: number;
  /** Column where the value starts (default 24, after "Authentication-Results: "). */
  startColumn?: number;
  /** Line break for folding (default CRLF); "" keeps the value on one line. */
  newline?: string;
}

/**
 * Format the value of an Authentication-Results field (RFC 8601), folded at 78
 * columns. Takes verification results or ready entries; with none: "id; none".
 * Never writes a control character (CR, LF, NUL, ...) except the folds themselves: a
 * property value holding one is left out, and reason, comments and authserv-id get "?"
 * in its place, so no value can end the field or start a forged one.
 */
export function formatAuthenticationResults(
  authservId: string,
  results: readonly (VerificationResult | AuthResultEntry)[],
  options: FormatOptions = {},
): string {
  const isEntry = (r: VerificationResult | AuthResultEntry): r is AuthResultEntry => 'properties' in r;
  // Convert verification results together, so that header.b prefixes are unique.
  const entries = results.some(isEntry)
    ? results.map((r) => (isEntry(r) ? r : (toAuthResultEntries([r])[0] as AuthResultEntry)))
    : toAuthResultEntries(results as VerificationResult[]);
  const words: string[] = [];
  const head = formatValue(sanitize(authservId)) + (options.version && options.version !== 1 ? ` ${options.version}` : '');
  if (entries.length === 0) {
    words.push(`${head};`, 'none');
  } else {
    words.push(`${head};`);
    entries.forEach((entry, index) => {
      const part: string[] = [];
      part.push(`${keyword(entry.method)}${entry.methodVersion ? `/${entry.methodVersion}` : ''}=${keyword(entry.result)}`);
      for (const comment of entry.comments ?? []) part.push(formatComment(comment));
      if (entry.reason !== undefined) part.push(`reason=${quote(entry.reason)}`);
      for (const p of entry.properties) {
        // A value with a control character in it (an identity decoded from =0A or =00)
        // is left out rather than changed: A-R must not name what the message did not.
        if (CTL.test(p.value)) continue;
        part.push(`${keyword(p.ptype)}.${keyword(p.property)}=${formatValue(p.value)}`);
      }
      if (index < entries.length - 1) part[part.length - 1] += ';';
      words.push(...part);
    });
  }
  const newline = options.newline ?? '\r\n';
  if (newline === '') return words.join(' ');
  let out = '';
  let col = options.startColumn ?? 24;
  for (const [i, word] of words.entries()) {
    if (i === 0) {
      out = word;
      col += word.length;
    } else if (col + 1 + word.length > 78) {
      out += `${newline}\t${word}`;
      col = 8 + word.length;
    } else {
      out += ` ${word}`;
      col += 1 + word.length;
    }
  }
  return out;
}

class Scanner {
  pos = 0;
  readonly comments: string[] = [];
  constructor(readonly text: string) {}

  /** Skip whitespace and comments, keeping the comments' text. */
  skipCfws(): void {
    for (;;) {
      while (this.pos < this.text.length && /[ \t\r\n]/.test(this.text[this.pos] as string)) this.pos++;
      if (this.text[this.pos] !== '(') return;
      let depth = 0;
      let body = '';
      while (this.pos < this.text.length) {
        const c = this.text[this.pos++] as string;
        if (c === '\\') {
          body += this.text[this.pos++] ?? '';
          continue;
        }
        if (c === '(') {
          if (depth > 0) body += c;
          depth++;
        } else if (c === ')') {
          depth--;
          if (depth === 0) break;
          body += c;
        } else body += c;
      }
      if (depth !== 0) throw new Error('unterminated comment');
      this.comments.push(body);
    }
  }

  peek(): string | undefined {
    return this.text[this.pos];
  }

  expect(ch: string): void {
    if (this.text[this.pos] !== ch) throw new Error(`expected "${ch}" at ${this.pos}`);
    this.pos++;
  }

  /** A run of characters matching `re` (one character at a time). */
  run(re: RegExp): string {
    const start = this.pos;
    while (this.pos < this.text.length && re.test(this.text[this.pos] as string)) this.pos++;
    return this.text.slice(start, this.pos);
  }

  quoted(): string {
    this.expect('"');
    let out = '';
    while (this.pos < this.text.length) {
      const c = this.text[this.pos++] as string;
      if (c === '\\') out += this.text[this.pos++] ?? '';
      else if (c === '"') return out;
      else out += c;
    }
    throw new Error('unterminated quoted string');
  }

  /** A value: a quoted string, or anything up to whitespace, ";" or "(". */
  value(): string {
    if (this.peek() === '"') return this.quoted();
    const v = this.run(/[^ \t\r\n;()"]/);
    if (v === '') throw new Error(`expected a value at ${this.pos}`);
    return v;
  }

  takeComments(): string[] {
    return this.comments.splice(0, this.comments.length);
  }
}

const KEYWORD = /[A-Za-z0-9_-]/;

/** A version number; one too large to hold exactly does not parse (it could not be written back). */
function versionNumber(digits: string): number {
  const n = Number(digits);
  if (!Number.isSafeInteger(n)) throw new Error(`version ${digits.slice(0, 20)} is too large`);
  return n;
}

/**
 * Parse the value of an Authentication-Results field (RFC 8601). Returns null when
 * the value does not follow the grammar.
 */
export function parseAuthenticationResults(value: string): AuthenticationResults | null {
  const s = new Scanner(value.replace(/\r?\n(?=[ \t])/g, ''));
  try {
    s.skipCfws();
    const authservId = s.value();
    s.skipCfws();
    const out: AuthenticationResults = { authservId, results: [] };
    const version = s.run(/[0-9]/);
    if (version !== '') {
      out.version = versionNumber(version);
      s.skipCfws();
    }
    s.takeComments();
    if (s.pos >= s.text.length) return out;
    while (s.pos < s.text.length) {
      s.expect(';');
      s.skipCfws();
      if (s.pos >= s.text.length) break;
      const method = s.run(KEYWORD);
      if (method === '') throw new Error('expected a method');
      s.skipCfws();
      if (method.toLowerCase() === 'none' && (s.pos >= s.text.length || s.peek() === ';')) continue;
      const entry: AuthResultEntry = { method: method.toLowerCase(), result: '', properties: [] };
      if (s.peek() === '/') {
        s.pos++;
        s.skipCfws();
        entry.methodVersion = versionNumber(s.run(/[0-9]/));
        s.skipCfws();
      }
      s.expect('=');
      s.skipCfws();
      entry.result = s.run(KEYWORD).toLowerCase();
      if (entry.result === '') throw new Error('expected a result');
      s.skipCfws();
      while (s.pos < s.text.length && s.peek() !== ';') {
        const ptype = s.run(KEYWORD);
        if (ptype === '') throw new Error(`unexpected "${s.peek()}" at ${s.pos}`);
        s.skipCfws();
        if (ptype.toLowerCase() === 'reason' && s.peek() === '=') {
          s.pos++;
          s.skipCfws();
          entry.reason = s.value();
          s.skipCfws();
          continue;
        }
        s.expect('.');
        s.skipCfws();
        const property = s.run(/[A-Za-z0-9_.-]/);
        s.skipCfws();
        s.expect('=');
        s.skipCfws();
        entry.properties.push({ ptype: ptype.toLowerCase(), property: property.toLowerCase(), value: s.value() });
        s.skipCfws();
      }
      const comments = s.takeComments();
      if (comments.length > 0) entry.comments = comments;
      out.results.push(entry);
    }
    return out;
  } catch {
    return null;
  }
}

export type { AuthResult };
