import { type HeaderField, headerValue } from '@inkan/dkim-core';

/** The sending address of a message (RFC 4870 §3.2), which a DomainKeys signature vouches for. */
export interface SenderAddress {
  /** The address as written (comments and display name removed), e.g. "joe@example.org". */
  address: string;
  /** Before the last "@" ("" when there is no "@"); what key g= is matched against. */
  localPart: string;
  /** After the last "@", lower-cased; undefined when the address has no "@". */
  domain?: string;
  /** Which field it came from: A-R's header.sender or header.from. */
  header: 'sender' | 'from';
}

/**
 * Remove RFC 5322 comments (nested parentheses, backslash escapes) and line breaks,
 * keeping quoted strings as they are. Bounded: one pass over the text.
 */
function stripComments(text: string): string {
  let out = '';
  let depth = 0;
  let inQuote = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\r' || c === '\n') continue;
    if (depth > 0) {
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')') depth--;
      if (depth === 0) out += ' ';
      continue;
    }
    if (inQuote) {
      out += c;
      if (c === '\\' && i + 1 < text.length) out += text[++i] as string;
      else if (c === '"') inQuote = false;
      continue;
    }
    if (c === '"') inQuote = true;
    else if (c === '(') {
      depth = 1;
      continue;
    }
    out += c;
  }
  return out;
}

/** Remove whitespace outside quoted strings (an addr-spec has none of its own). */
function squeeze(text: string): string {
  let out = '';
  let inQuote = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (inQuote) {
      out += c;
      if (c === '\\' && i + 1 < text.length) out += text[++i] as string;
      else if (c === '"') inQuote = false;
    } else if (c === '"') {
      inQuote = true;
      out += c;
    } else if (c !== ' ' && c !== '\t') out += c;
  }
  return out;
}

/** The addr-spec of one mailbox: what is inside <...>, else the whole text. */
function mailboxAddress(entry: string): string {
  let inQuote = false;
  for (let i = 0; i < entry.length; i++) {
    const c = entry[i];
    if (inQuote) {
      if (c === '\\') i++;
      else if (c === '"') inQuote = false;
    } else if (c === '"') inQuote = true;
    else if (c === '<') {
      const close = entry.indexOf('>', i + 1);
      let inner = entry.slice(i + 1, close < 0 ? entry.length : close);
      // Obsolete source route: <@relay1,@relay2:joe@example.org>
      if (/^\s*@/.test(inner) && inner.includes(':')) inner = inner.slice(inner.lastIndexOf(':') + 1);
      return squeeze(inner);
    }
  }
  return squeeze(entry);
}

/**
 * The first mailbox address in an address-list field value (From, Sender), or
 * undefined when there is none. Handles display names, comments, quoted strings and
 * groups ("Team: a@example.org, b@example.org;").
 */
export function firstMailbox(value: string): string | undefined {
  const text = stripComments(value);
  let entry = '';
  let inQuote = false;
  let inAngle = false;
  const take = (): string | undefined => {
    const address = mailboxAddress(entry);
    entry = '';
    return address === '' ? undefined : address;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (inQuote) {
      entry += c;
      if (c === '\\' && i + 1 < text.length) entry += text[++i] as string;
      else if (c === '"') inQuote = false;
      continue;
    }
    if (c === '"') inQuote = true;
    else if (c === '<') inAngle = true;
    else if (c === '>') inAngle = false;
    else if (!inAngle && c === ':') {
      // A group's display name: what came before is not an address.
      entry = '';
      continue;
    } else if (!inAngle && (c === ',' || c === ';')) {
      const address = take();
      if (address !== undefined) return address;
      continue;
    }
    entry += c;
  }
  return take();
}

function split(address: string, header: 'sender' | 'from'): SenderAddress {
  const at = address.lastIndexOf('@');
  if (at < 0) return { address, localPart: '', header };
  return { address, localPart: address.slice(0, at), domain: address.slice(at + 1).toLowerCase(), header };
}

/**
 * Sender determination for DomainKeys (RFC 4870 §3.2), among the *signed* header
 * fields: the Sender field's first address when there is a Sender field with an
 * address, otherwise the From field's. With several such fields, the last one in
 * hashing order counts, as in Mail::DKIM. Undefined when neither gives an address.
 */
export function determineSender(signedFields: readonly HeaderField[]): SenderAddress | undefined {
  let sender: HeaderField | undefined;
  let from: HeaderField | undefined;
  for (const field of signedFields) {
    const name = field.name.toLowerCase();
    if (name === 'sender') sender = field;
    else if (name === 'from') from = field;
  }
  if (sender) {
    const address = firstMailbox(headerValue(sender).toString('latin1'));
    if (address !== undefined) return split(address, 'sender');
  }
  if (from) {
    const address = firstMailbox(headerValue(from).toString('latin1'));
    if (address !== undefined) return split(address, 'from');
  }
  return undefined;
}
