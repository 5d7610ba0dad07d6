import type { HeaderField } from '@inkan/dkim-core';

const COLON = 0x3a;
const NAME = /^[^\s:]+$/;

/** The lower-cased name of a field that has one ("Name:" or "Name :"), else undefined. */
function groupName(field: HeaderField): string | undefined {
  if (field.raw.indexOf(COLON) < 0 || !NAME.test(field.name)) return undefined;
  return field.name.toLowerCase();
}

/**
 * The header fields a DomainKey-Signature covers, in the order they are hashed.
 * `after` holds the fields below the signature field (RFC 4870 §3.4.2: a signature
 * covers only what follows it).
 *
 * Without h=, all of them, in message order. With h= (RFC 4870 §3.3 "h"), only the
 * listed names, in h= order, and a verifier takes every occurrence of a listed name:
 * working back from the end of h=, a name's first mention takes all its occurrences
 * not claimed yet, in message order, and each further mention of the same name takes
 * one occurrence from the bottom. Names listed but absent are skipped. This is the
 * order Mail::DKIM (DkCommon.pm) hashes in.
 */
export function selectDomainKeysFields(after: readonly HeaderField[], headers: readonly string[] | undefined): HeaderField[] {
  if (!headers || headers.length === 0) return [...after];
  const groups = new Map<string, HeaderField[]>();
  for (const field of after) {
    const name = groupName(field);
    if (name === undefined) continue;
    const list = groups.get(name);
    if (list) list.push(field);
    else groups.set(name, [field]);
  }
  const mentions = new Map<string, number>();
  for (const name of headers) mentions.set(name, (mentions.get(name) ?? 0) + 1);
  const picked: HeaderField[][] = [];
  for (let k = headers.length - 1; k >= 0; k--) {
    const name = headers[k] as string;
    const left = (mentions.get(name) ?? 1) - 1;
    mentions.set(name, left);
    const list = groups.get(name);
    if (!list || list.length === 0) continue;
    if (left > 0) {
      picked.push([list.pop() as HeaderField]);
    } else {
      picked.push(list.slice());
      list.length = 0;
    }
  }
  const out: HeaderField[] = [];
  for (let k = picked.length - 1; k >= 0; k--) out.push(...(picked[k] as HeaderField[]));
  return out;
}
