/**
 * Tag=value lists (RFC 6376 §3.2), shared by DKIM-Signature, key records and
 * DomainKeys. Works on latin1 strings so that every byte maps to one character.
 */
export type TagListResult = { ok: true; tags: Map<string, string> } | { ok: false; error: string; tags: Map<string, string> };

const TAG_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const ALL_FWS = /[ \t\r\n]+/g;

/** Remove folding whitespace from both ends (SP, HTAB, CR, LF only; never other Unicode spaces). */
export function trimFws(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isFws(text.charCodeAt(start))) start++;
  while (end > start && isFws(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

function isFws(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
}

/** Remove every folding whitespace character (for base64 values such as b=, bh=, p=). */
export function stripFws(text: string): string {
  return text.replace(ALL_FWS, '');
}

/**
 * Parse a tag list. Tag names are case-sensitive; values are returned with surrounding
 * folding whitespace removed. A duplicate tag, a tag without "=" or a malformed name is
 * an error; empty list elements (";;", a trailing ";") are tolerated. On error, the tags
 * read so far are still returned, so that a result can name the domain and selector.
 */
export function parseTagList(text: string): TagListResult {
  const tags = new Map<string, string>();
  for (const part of text.split(';')) {
    if (trimFws(part) === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) return { ok: false, error: `malformed tag list: "${clip(trimFws(part))}" has no "="`, tags };
    const name = trimFws(part.slice(0, eq));
    if (!TAG_NAME.test(name)) return { ok: false, error: `malformed tag list: bad tag name "${clip(name)}"`, tags };
    if (tags.has(name)) return { ok: false, error: `duplicate tag "${name}="`, tags };
    tags.set(name, trimFws(part.slice(eq + 1)));
  }
  return { ok: true, tags };
}

/** Shorten text for use in a reason string. */
export function clip(text: string, max = 40): string {
  const printable = text.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > max ? `${printable.slice(0, max)}...` : printable;
}
