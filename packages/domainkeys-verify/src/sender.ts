import { type HeaderField, headerValue, parseMailboxList } from '@inkan/dkim-core';

/** The sending address of a message (RFC 4870 §3.2), which a DomainKeys signature vouches for. */
export interface SenderAddress {
  /** The address as written (comments and display name removed), e.g. "joe@example.org". */
  address: string;
  /** Before the "@"; what key g= is matched against. */
  localPart: string;
  /** After the "@", lower-cased. */
  domain: string;
  /** Which field it came from: A-R's header.sender or header.from. */
  header: 'sender' | 'from';
}

/**
 * The first mailbox address in an address-list field value (From, Sender; latin1), or
 * undefined when it names none or is no address list. dkim-core's parseMailboxList reads it:
 * display names, comments, quoted strings, groups ("Team: a@example.org, b@example.org;").
 */
export function firstMailbox(value: string): string | undefined {
  const parsed = parseMailboxList(value);
  return parsed.ok ? parsed.mailboxes[0]?.address : undefined;
}

/** The first mailbox of a field, as a SenderAddress; undefined when it has none or is no address list. */
function firstOf(field: HeaderField, header: 'sender' | 'from'): SenderAddress | undefined {
  const parsed = parseMailboxList(headerValue(field));
  const first = parsed.ok ? parsed.mailboxes[0] : undefined;
  return first && { address: first.address, localPart: first.localPart, domain: first.domain.toLowerCase(), header };
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
  return (sender && firstOf(sender, 'sender')) ?? (from && firstOf(from, 'from'));
}
