import type { Buffer } from 'node:buffer';
import { parseMailboxList } from '@inkan/dkim-core';

/**
 * The address that picks the signing key: the first mailbox of a From field value (the
 * octets after the colon, as latin1), lowercased, as OpenDKIM does: "Joe <Joe@Example.org>,
 * x@y" gives "joe@example.org", and so does the RFC 6854 group "Team: joe@example.org;".
 * Undefined when the value is no address list or names no mailbox.
 */
export function fromAddress(value: Buffer | string): string | undefined {
  const parsed = parseMailboxList(value);
  const first = parsed.ok ? parsed.mailboxes[0] : undefined;
  return first?.address.toLowerCase();
}

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1);
}
