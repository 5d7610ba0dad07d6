/**
 * DomainKey-Signature parsing (RFC 4870 §3.3): parseDomainKeySignature gives a signature
 * or an error result naming the rule, never an exception; a parsed one keeps the rules
 * (rsa-sha1, simple or nofws, q=dns, d= and s= present, h= names lowercased).
 */
import { Buffer } from 'node:buffer';
import { parseDomainKeySignature } from '@inkan/domainkeys-verify';
import { type FuzzTarget, check, encodesOctets, show } from '../target.js';

export const target: FuzzTarget = {
  name: 'domainkey-signature',
  description: 'parseDomainKeySignature',
  maxLength: 2048,
  dictionary: [
    'a=rsa-sha1',
    'a=',
    'c=nofws',
    'c=simple',
    'c=',
    'd=example.org',
    'd=Example.ORG.',
    's=sel',
    's=a.b',
    'q=dns',
    'q=',
    'h=from:to:subject',
    'h=',
    'b=dGVzdA==',
    'b=',
    '; ',
    ';',
    '=',
    ':',
    '\r\n\t',
    ' ',
  ],
  fuzz(data) {
    const parsed = parseDomainKeySignature(data.toString('latin1'));
    if (!parsed.ok) {
      check(typeof parsed.error === 'string' && parsed.error.length > 0, 'an unusable signature without a reason');
      return;
    }
    const sig = parsed.signature;
    check(sig.algorithm === 'rsa-sha1', () => `a= became ${show(sig.algorithm)}`);
    check(sig.canonicalization === 'simple' || sig.canonicalization === 'nofws', () => `c= became ${show(sig.canonicalization)}`);
    check(sig.query === 'dns', 'q= other than dns was accepted');
    check(sig.domain !== '' && sig.domain === sig.domain.toLowerCase(), () => `d= became ${show(sig.domain)}`);
    check(sig.selector !== '' && !sig.selector.endsWith('.'), () => `s= became ${show(sig.selector)}`);
    check(encodesOctets(sig.signatureB64), () => `b=${show(sig.signatureB64)} was accepted: it is not base64 of any octet`);
    check(Buffer.from(sig.signatureB64, 'base64').equals(sig.signature), 'b= and its decoded bytes differ');
    if (sig.headers !== undefined) {
      const headers = sig.headers;
      check(headers.length > 0, 'an empty h= list was kept');
      check(
        headers.every((h) => h !== '' && h === h.toLowerCase()),
        () => `h= names ${show(headers)}`,
      );
      check(sig.headersAsWritten !== undefined, 'h= names without the names as written');
    }
  },
};
