/**
 * DKIM-Signature parsing (RFC 6376 §3.5): parseDkimSignature gives a signature or an error
 * result, never an exception. A parsed signature must keep RFC 6376's rules (From signed,
 * i= inside d=, l= a safe integer, x= not before t=), survive formatFoldedTags and a
 * second parse unchanged, and removeSignatureValue must empty b= and touch nothing else.
 */
import { Buffer } from 'node:buffer';
import {
  type FormatTag,
  formatFoldedTags,
  isSameOrSubdomain,
  parseDkimSignature,
  parseTagList,
  removeSignatureValue,
  stripFws,
} from '@inkan/dkim-core/records';
import { type FuzzTarget, check, encodesOctets, sameData, show } from '../target.js';

const FIELD = 'DKIM-Signature';
const HASH_OF: Record<string, string> = { 'rsa-sha256': 'sha256', 'rsa-sha1': 'sha1', 'ed25519-sha256': 'sha256' };
const NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/** The parts of a signature a verifier acts on. */
function essentials(sig: import('@inkan/dkim-core/records').DkimSignature): unknown {
  const { tags: _tags, ...rest } = sig;
  return rest;
}

export const target: FuzzTarget = {
  name: 'dkim-signature',
  description: 'parseDkimSignature, removeSignatureValue, formatFoldedTags round trip',
  maxLength: 2048,
  dictionary: [
    'v=1',
    'a=rsa-sha256',
    'a=ed25519-sha256',
    'a=rsa-sha1',
    'c=relaxed/relaxed',
    'c=simple/relaxed',
    'c=relaxed',
    'd=example.org',
    'd=sub.example.org.',
    's=sel',
    'h=from:to:subject',
    'h=From',
    'bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
    'b=dGVzdA==',
    'b=',
    'i=@example.org',
    'i=user=40x@sub.example.org',
    'l=0',
    'l=12',
    't=1700000000',
    'x=1800000000',
    'q=dns/txt',
    'z=From:a=40b|To:c',
    '; ',
    ';',
    '=',
    ':',
    '|',
    '=3D',
    '\r\n\t',
    ' ',
  ],
  fuzz(data) {
    const value = data.toString('latin1');
    const parsed = parseDkimSignature(value);

    const raw = Buffer.concat([Buffer.from(`${FIELD}:`, 'latin1'), data]);
    const stripped = removeSignatureValue(raw);
    check(stripped.length <= raw.length, 'removeSignatureValue made the field longer');
    check(stripped.subarray(0, FIELD.length + 1).equals(raw.subarray(0, FIELD.length + 1)), 'removeSignatureValue changed the field name');

    if (!parsed.ok) {
      check(typeof parsed.error === 'string' && parsed.error.length > 0, 'an unusable signature without a reason');
      return;
    }
    const sig = parsed.signature;
    check(HASH_OF[sig.algorithm] === sig.hashAlgorithm, () => `a=${sig.algorithm} with hash ${sig.hashAlgorithm}`);
    check(
      sig.keyType === (sig.algorithm.startsWith('ed25519') ? 'ed25519' : 'rsa'),
      () => `a=${sig.algorithm} with key type ${sig.keyType}`,
    );
    check(encodesOctets(sig.signatureB64), () => `b=${show(sig.signatureB64)} was accepted: it is not base64 of any octet`);
    check(
      encodesOctets(stripFws(sig.tags.get('bh') ?? '')),
      () => `bh=${show(sig.tags.get('bh'))} was accepted: it is not base64 of any octet`,
    );
    check(Buffer.from(sig.signatureB64, 'base64').equals(sig.signature), 'b= and its decoded bytes differ');
    check(sig.signedHeaders.length > 0 && sig.signedHeaders.every((h) => NAME.test(h)), () => `h= names ${show(sig.signedHeaders)}`);
    check(
      sig.signedHeaders.some((h) => h.toLowerCase() === 'from'),
      'a signature that does not sign From was accepted',
    );
    const at = sig.auid.lastIndexOf('@');
    check(at >= 0 && isSameOrSubdomain(sig.auid.slice(at + 1), sig.sdid), () => `i=${show(sig.auid)} is not inside d=${show(sig.sdid)}`);
    if (sig.bodyLength !== undefined)
      check(Number.isSafeInteger(sig.bodyLength) && sig.bodyLength >= 0, () => `l= became ${sig.bodyLength}`);
    for (const n of [sig.timestamp, sig.expiration])
      if (n !== undefined) check(Number.isSafeInteger(n) && n >= 0, () => `t=/x= became ${n}`);
    if (sig.timestamp !== undefined && sig.expiration !== undefined) check(sig.expiration >= sig.timestamp, 'x= before t= was accepted');

    // b= removed: every other tag exactly as it was.
    const after = parseTagList(stripped.subarray(FIELD.length + 1).toString('latin1'));
    check(after.ok, () => `the field with b= removed no longer parses: ${after.ok ? '' : after.error}`);
    const expectedTags = new Map(sig.tags);
    expectedTags.set('b', '');
    check(sameData(after.tags, expectedTags), () => `removeSignatureValue changed other tags: ${show(after.tags)}`);

    // Formatted (folded at 78 columns) and parsed again: the same signature.
    const tags: FormatTag[] = [...sig.tags].map(([name, v]) => ({
      name,
      value: v,
      breakAfter: name === 'b' || name === 'bh' ? '' : name === 'h' ? ':' : undefined,
    }));
    const field = formatFoldedTags(FIELD, tags);
    check(field.startsWith(`${FIELD}:`), 'formatFoldedTags lost the field name');
    const again = parseDkimSignature(field.slice(FIELD.length + 1));
    check(again.ok, () => `the formatted signature no longer parses: ${again.ok ? '' : again.error}\n${field}`);
    check(sameData(essentials(again.signature), essentials(sig)), () => `formatted and parsed again, the signature changed:\n${field}`);
  },
};
