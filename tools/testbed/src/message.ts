/**
 * Reading what came out of a test MTA: the header fields of a delivered message and the
 * Authentication-Results among them. Messages are as the sink stores them: CRLF line ends.
 */

export interface HeaderField {
  name: string;
  /** Unfolded (every CRLF removed), without white space at either end. */
  value: string;
}

/** The header fields of a message, in order, unfolded. */
export function headerFields(message: Buffer | string): HeaderField[] {
  const bytes = typeof message === 'string' ? Buffer.from(message, 'latin1') : message;
  const end = bytes.indexOf('\r\n\r\n');
  const header = bytes.subarray(0, end === -1 ? bytes.length : end).toString('latin1');
  const out: HeaderField[] = [];
  for (const raw of header.split(/\r\n(?![ \t])/)) {
    const colon = raw.indexOf(':');
    if (colon <= 0) continue;
    out.push({
      name: raw.slice(0, colon).trim(),
      value: raw
        .slice(colon + 1)
        .replace(/\r\n/g, '')
        .trim(),
    });
  }
  return out;
}

/** The values of the fields named `name` (any case), in order. */
export function headerValues(message: Buffer | string, name: string): string[] {
  const wanted = name.toLowerCase();
  return headerFields(message)
    .filter((f) => f.name.toLowerCase() === wanted)
    .map((f) => f.value);
}

/** The Subject of a message, if it has one. */
export function subjectOf(message: Buffer | string): string | undefined {
  return headerValues(message, 'Subject')[0];
}

/** A parsed Authentication-Results field: at least who added it. */
export interface ParsedAuthenticationResults {
  authservId: string;
}

/**
 * The Authentication-Results fields of a message, in order, parsed by `parse`: the harness
 * does not depend on the code under test, so the caller passes @inkan/dkim-core's
 * parseAuthenticationResults. With `authservId`, only the fields that id added (any case).
 * A field `parse` rejects (null) is left out.
 */
export function authenticationResults<T extends ParsedAuthenticationResults>(
  message: Buffer | string,
  parse: (value: string) => T | null,
  authservId?: string,
): T[] {
  const out: T[] = [];
  for (const value of headerValues(message, 'Authentication-Results')) {
    const parsed = parse(value);
    if (parsed && (authservId === undefined || parsed.authservId.toLowerCase() === authservId.toLowerCase())) out.push(parsed);
  }
  return out;
}
