/**
 * Authentication-Results (RFC 8601): parseAuthenticationResults gives a structure or null,
 * never an exception. What it parses, formatAuthenticationResults writes back (on one line
 * and folded at 78 columns) so that it parses to the same structure, as the milter relies
 * on when it reads fields that claim its authserv-id; except what the formatter documents
 * it changes (control characters in free text made "?", property values holding one left
 * out, names that are no keyword rewritten), and it never writes a control character but
 * its own folds.
 */
import { type AuthenticationResults, formatAuthenticationResults, parseAuthenticationResults } from '@inkan/dkim-core';
import { type FuzzTarget, check, sameData, show } from '../target.js';

const KEYWORD = /^[a-z0-9_-]+$/;

/** What a format and parse cannot keep: version 1 is the default, method version 0 is none. */
function normalized(ar: AuthenticationResults): unknown {
  return {
    authservId: ar.authservId,
    version: ar.version === 1 || ar.version === 0 ? undefined : ar.version,
    results: ar.results.map((r) => ({ ...r, methodVersion: r.methodVersion ? r.methodVersion : undefined })),
  };
}

const CONTROL = /[\x00-\x1f\x7f]/;
/** What the formatter writes as it is given: a method, result, ptype or property name. */
const NAME = /^[A-Za-z0-9_.-]+$/;

/** Results the formatter writes back unchanged: no control character in any text, every name a keyword. */
function writtenAsIs(ar: AuthenticationResults): boolean {
  const texts = [ar.authservId, ...ar.results.flatMap((r) => [r.reason ?? '', ...(r.comments ?? []), ...r.properties.map((p) => p.value)])];
  const names = ar.results.flatMap((r) => [r.method, r.result, ...r.properties.flatMap((p) => [p.ptype, p.property])]);
  return !texts.some((t) => CONTROL.test(t)) && names.every((n) => NAME.test(n));
}

export const target: FuzzTarget = {
  name: 'authentication-results',
  description: 'parseAuthenticationResults, and format + parse round trip',
  maxLength: 2048,
  dictionary: [
    'mx.example.org',
    '; ',
    ';',
    ' none',
    'dkim=pass',
    'dkim/1=fail',
    'domainkeys=neutral',
    'spf=softfail',
    ' reason="bad"',
    ' header.d=example.org',
    ' header.i=@example.org',
    ' header.b=abcd1234',
    ' smtp.mailfrom=user@example.org',
    ' policy.x-y=z',
    '(comment)',
    '(nested (comment))',
    '"quoted \\" string"',
    '\\',
    '1',
    '=',
    '.',
    '/',
    '\r\n\t',
  ],
  fuzz(data) {
    const parsed = parseAuthenticationResults(data.toString('latin1'));
    if (!parsed) return;
    for (const r of parsed.results) {
      check(KEYWORD.test(r.method), () => `method ${show(r.method)} is not a lowercase keyword`);
      check(KEYWORD.test(r.result), () => `result ${show(r.result)} is not a lowercase keyword`);
      for (const p of r.properties) check(KEYWORD.test(p.ptype), () => `ptype ${show(p.ptype)} is not a lowercase keyword`);
    }
    const asIs = writtenAsIs(parsed);
    const expected = normalized(parsed);
    for (const newline of ['', '\r\n']) {
      const text = formatAuthenticationResults(parsed.authservId, parsed.results, { version: parsed.version, newline });
      check(!CONTROL.test(text.replace(/\r\n[ \t]/g, '')), () => `the formatted field holds a control character: ${show(text, 400)}`);
      const again = parseAuthenticationResults(text);
      check(again !== null, () => `the formatted field does not parse: ${show(text, 400)}`);
      if (asIs)
        check(
          sameData(normalized(again), expected),
          () => `formatted and parsed again, the results changed: ${show(text, 400)} gives ${show(again, 400)}`,
        );
    }
  },
};
