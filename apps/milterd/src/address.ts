/**
 * The first mailbox of a From field value, lowercased ("Joe <Joe@Example.org>, x@y" gives
 * "joe@example.org"). Comments and quoted display names are skipped; undefined when there
 * is no address.
 */
export function fromAddress(value: string): string | undefined {
  let text = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (c === '\\' && (quoted || depth > 0)) {
      i++;
      continue;
    }
    if (!quoted && c === '(') depth++;
    else if (!quoted && c === ')' && depth > 0) depth--;
    else if (depth === 0 && c === '"') quoted = !quoted;
    else if (depth === 0 && !quoted) text += c;
  }
  const first = text.split(',').find((part) => part.includes('@'));
  if (!first) return undefined;
  const angle = /<([^<>]*)>/.exec(first);
  const address = (angle ? (angle[1] as string) : first).replace(/[\s\r\n]+/g, '').replace(/^.*:/, '');
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  return address.toLowerCase();
}

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1);
}
