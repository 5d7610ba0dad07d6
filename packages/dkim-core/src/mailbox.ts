import type { Buffer } from 'node:buffer';

/**
 * One mailbox of an address-list field (From, Sender, Reply-To...). Strings hold the field's
 * bytes one character per octet (latin1): a UTF-8 local part (RFC 6532) stays the octets it
 * was, and Buffer.from(text, 'latin1') gives them back.
 */
export interface Mailbox {
  /** local-part "@" domain as written, without comments or folding whitespace. */
  address: string;
  /** Before the "@"; a quoted local part keeps its quotes and backslashes. */
  localPart: string;
  /** After the "@", case as written; a domain literal keeps its brackets. */
  domain: string;
  /** The display name, quoted strings unquoted, words joined by single spaces; absent when none. */
  displayName?: string;
  /** The group the mailbox was listed in (RFC 6854 allows groups in From). */
  group?: string;
}

/** Every mailbox of a field value, in order (none for an empty group), or why the value is no address list. */
export type MailboxListResult = { ok: true; mailboxes: Mailbox[] } | { ok: false; error: string };

type Token =
  | { kind: 'atom'; text: string; space: boolean }
  | { kind: 'quoted'; raw: string; text: string; space: boolean }
  | { kind: 'literal'; raw: string; space: boolean }
  | { kind: 'special'; char: string; space: boolean };

/** RFC 5322 atext, plus every octet from 0x80 (RFC 6532 UTF-8). */
const ATEXT = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\xff]/;
const SPECIALS = '<>@,;:.';
/** Control characters other than the whitespace of folding. */
const CTL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

class Malformed extends Error {}

/** Show at most 40 characters of a value in an error, with control characters as "?". */
function shown(text: string): string {
  const clipped = text.length > 40 ? `${text.slice(0, 40)}...` : text;
  return clipped.replace(/[\x00-\x1f\x7f]/g, '?');
}

/** Split a field value into words and specials; comments and folding whitespace only set `space`. One pass. */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let space = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      space = true;
      i++;
    } else if (c === '(') {
      // A comment, nested parentheses and quoted-pairs within.
      let depth = 0;
      do {
        const d = text[i];
        if (d === undefined) throw new Malformed('unclosed comment');
        if (d === '\\') i++;
        else if (d === '(') depth++;
        else if (d === ')') depth--;
        else if (CTL.test(d)) throw new Malformed('control character in a comment');
        i++;
      } while (depth > 0);
      space = true;
    } else if (c === '"') {
      let j = i + 1;
      let value = '';
      for (;;) {
        const d = text[j];
        if (d === undefined) throw new Malformed('unclosed quoted string');
        if (d === '"') break;
        if (d === '\\') {
          const e = text[j + 1];
          if (e === undefined) throw new Malformed('unclosed quoted string');
          if (CTL.test(e) || e === '\r' || e === '\n') throw new Malformed('control character in a quoted string');
          value += e;
          j += 2;
          continue;
        }
        if (CTL.test(d)) throw new Malformed('control character in a quoted string');
        // Folding inside a quoted string is removed (RFC 5322 §3.2.4: CRLF is not part of it).
        if (d !== '\r' && d !== '\n') value += d;
        j++;
      }
      tokens.push({ kind: 'quoted', raw: text.slice(i, j + 1).replace(/[\r\n]/g, ''), text: value, space });
      space = false;
      i = j + 1;
    } else if (c === '[') {
      const close = text.indexOf(']', i);
      if (close < 0) throw new Malformed('unclosed domain literal');
      const raw = text.slice(i, close + 1).replace(/[\r\n\t ]/g, '');
      if (/[[\\\x00-\x1f\x7f]/.test(raw.slice(1, -1))) throw new Malformed(`bad domain literal ${shown(raw)}`);
      tokens.push({ kind: 'literal', raw, space });
      space = false;
      i = close + 1;
    } else if (SPECIALS.includes(c)) {
      tokens.push({ kind: 'special', char: c, space });
      space = false;
      i++;
    } else if (ATEXT.test(c)) {
      let j = i + 1;
      while (j < text.length && ATEXT.test(text[j] as string)) j++;
      tokens.push({ kind: 'atom', text: text.slice(i, j), space });
      space = false;
      i = j;
    } else {
      throw new Malformed(CTL.test(c) ? 'control character' : `unexpected "${shown(c)}"`);
    }
  }
  return tokens;
}

/** Reads an address list from tokens (RFC 5322 §3.4 with its obsolete forms, RFC 6854 groups). */
class AddressListReader {
  private pos = 0;
  private readonly tokens: Token[];

  constructor(tokens: Token[]) {
    this.tokens = tokens;
  }

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private isSpecial(char: string): boolean {
    const t = this.peek();
    return t?.kind === 'special' && t.char === char;
  }

  private expect(char: string, what: string): void {
    if (!this.isSpecial(char)) throw new Malformed(`expected "${char}" ${what}${this.where()}`);
    this.pos++;
  }

  private where(): string {
    const t = this.peek();
    if (!t) return ', found the end';
    const text = t.kind === 'special' ? t.char : t.kind === 'atom' ? t.text : t.raw;
    return `, found "${shown(text)}"`;
  }

  /** address-list: addresses separated by commas; empty elements (obs-addr-list) are skipped. */
  read(): Mailbox[] {
    const out: Mailbox[] = [];
    for (;;) {
      while (this.isSpecial(',')) this.pos++;
      if (!this.peek()) return out;
      this.address(out);
      if (this.peek() && !this.isSpecial(',')) throw new Malformed(`expected "," between addresses${this.where()}`);
    }
  }

  /** A group (display-name ":" [mailbox-list] ";") or one mailbox. */
  private address(out: Mailbox[]): void {
    const start = this.pos;
    const words = this.words();
    if (words.length > 0 && this.isSpecial(':')) {
      this.pos++;
      const group = this.phraseText(words, 'group name');
      for (;;) {
        while (this.isSpecial(',')) this.pos++;
        // The ";" ends the group; a value that stops before it is read as if it were there.
        if (this.isSpecial(';')) {
          this.pos++;
          return;
        }
        if (!this.peek()) return;
        out.push({ ...this.mailbox(), group });
        if (this.peek() && !this.isSpecial(',') && !this.isSpecial(';'))
          throw new Malformed(`expected "," or ";" in group ${shown(group)}${this.where()}`);
      }
    }
    this.pos = start;
    out.push(this.mailbox());
  }

  /** name-addr ([display-name] angle-addr) or addr-spec. */
  private mailbox(): Mailbox {
    const words = this.words();
    if (this.isSpecial('<')) {
      this.pos++;
      this.route();
      const mailbox = this.addrSpec(this.words());
      this.expect('>', 'after the address');
      if (words.length > 0) mailbox.displayName = this.phraseText(words, 'display name');
      return mailbox;
    }
    if (words.length === 0) throw new Malformed(`expected an address${this.where()}`);
    return this.addrSpec(words);
  }

  /** obs-route before an address in angle brackets: "@a.example,@b.example:" (dropped). */
  private route(): void {
    if (!this.isSpecial('@') && !this.isSpecial(',')) return;
    while (this.isSpecial('@') || this.isSpecial(',')) {
      if (this.isSpecial(',')) {
        this.pos++;
        continue;
      }
      this.pos++;
      this.domain();
    }
    this.expect(':', 'after a source route');
  }

  /** Words and dots up to the next other special: a phrase or a local part, as the next token decides. */
  private words(): Token[] {
    const words: Token[] = [];
    for (
      let t = this.peek();
      t && (t.kind === 'atom' || t.kind === 'quoted' || (t.kind === 'special' && t.char === '.'));
      t = this.peek()
    ) {
      words.push(t);
      this.pos++;
    }
    return words;
  }

  /** local-part "@" domain, the local part from words already read. */
  private addrSpec(words: Token[]): Mailbox {
    if (words.length === 0) throw new Malformed(`expected a local part${this.where()}`);
    let localPart = '';
    let afterWord = false;
    for (const w of words) {
      if (w.kind === 'special') {
        afterWord = false;
        localPart += '.';
      } else {
        // Two words with no dot between them are a phrase, not a local part ("John Smith@x").
        if (afterWord) throw new Malformed(`"${shown(localPart)} ..." is not a local part (a display name needs <...> around the address)`);
        afterWord = true;
        localPart += w.kind === 'atom' ? w.text : w.raw;
      }
    }
    if (!/[^.]/.test(localPart)) throw new Malformed('empty local part');
    this.expect('@', `after local part "${shown(localPart)}"`);
    const domain = this.domain();
    return { address: `${localPart}@${domain}`, localPart, domain };
  }

  /** dot-atom or domain-literal. */
  private domain(): string {
    const t = this.peek();
    if (t?.kind === 'literal') {
      this.pos++;
      return t.raw;
    }
    let domain = '';
    for (;;) {
      const label = this.peek();
      if (label?.kind !== 'atom') throw new Malformed(`expected a domain${domain ? ` after "${shown(domain)}"` : ''}${this.where()}`);
      domain += label.text;
      this.pos++;
      if (!this.isSpecial('.')) return domain;
      this.pos++;
      domain += '.';
    }
  }

  /** A phrase's words as text: quoted strings unquoted, single spaces where there was whitespace. */
  private phraseText(words: Token[], what: string): string {
    let text = '';
    for (const w of words) {
      const part = w.kind === 'atom' ? w.text : w.kind === 'quoted' ? w.text : '.';
      text += text !== '' && w.space ? ` ${part}` : part;
    }
    if (text === '') throw new Malformed(`empty ${what}`);
    return text;
  }
}

/**
 * Every mailbox of an address-list field value (the bytes after the colon, or them as a latin1
 * string): bare addr-specs, display names with quoted strings and comments (nested, escaped),
 * obsolete source routes and whitespace around dots, folding, RFC 6854 groups ("Team:
 * a@example.org;", "undisclosed-recipients:;") and UTF-8 local parts and domains, passed on as
 * their octets. Anything else is refused with the reason. Never throws; one pass, no recursion.
 */
export function parseMailboxList(value: Buffer | string): MailboxListResult {
  const text = typeof value === 'string' ? value : value.toString('latin1');
  try {
    return { ok: true, mailboxes: new AddressListReader(tokenize(text)).read() };
  } catch (error) {
    if (error instanceof Malformed) return { ok: false, error: `not an address list: ${error.message}` };
    throw error;
  }
}
