import { Buffer } from 'node:buffer';
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { canonicalizationReference } from '@inkan/testbed';

/** A random odd number of exactly `bits` bits, big-endian. */
function oddNumber(bits: number): Buffer {
  const bytes = randomBytes(Math.ceil(bits / 8));
  const spare = bytes.length * 8 - bits;
  bytes[0] = ((bytes[0] as number) & (0xff >> spare)) | (0x80 >> spare);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) | 1;
  return bytes;
}

/**
 * p= (SubjectPublicKeyInfo, base64) of an RSA "key" whose modulus and public exponent are
 * random odd numbers of these sizes (exponentBits < modulusBits); no private key exists.
 * With a 3071-bit exponent, each verification with it costs about as much as a private-key
 * operation: what a hostile sender publishes to slow a verifier down.
 */
export function rsaPublicKeyB64(modulusBits: number, exponentBits: number): string {
  if (exponentBits >= modulusBits) throw new Error('the exponent must be shorter than the modulus');
  return spki(oddNumber(modulusBits), oddNumber(exponentBits));
}

/** p= of an RSA "key" with a random odd modulus of `modulusBits` and this public exponent (65537: as costly as a real key). */
export function rsaPublicKeyWithExponentB64(modulusBits: number, exponent: bigint): string {
  const hex = exponent.toString(16);
  return spki(oddNumber(modulusBits), Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex'));
}

function spki(n: Buffer, e: Buffer): string {
  const jwk = { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') };
  return createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'der', type: 'spki' }).toString('base64');
}

/** The SHA-256 of a body as c=simple canonicalizes it (RFC 6376 §3.4.3, the testbed's reference). */
function simpleBodyHash(body: Buffer): string {
  return createHash('sha256')
    .update(Buffer.from(canonicalizationReference.simpleBody(body.toString('latin1')), 'latin1'))
    .digest('base64');
}

/**
 * `message` (CRLF, From at `domain`) with `dkim` DKIM-Signature and `domainKeys`
 * DomainKey-Signature fields on top, all naming selector `selector` at `domain`. Each has a
 * correct body hash and a random b= of `signatureBytes` smaller than any modulus of that
 * size, so that every one of them reaches the RSA operation (and fails there).
 */
export function withManySignatures(
  message: Buffer,
  o: { domain: string; selector: string; dkim: number; domainKeys: number; signatureBytes: number },
): Buffer {
  const split = message.indexOf('\r\n\r\n');
  const bh = simpleBodyHash(split < 0 ? Buffer.alloc(0) : message.subarray(split + 4));
  const b = () => {
    const bytes = randomBytes(o.signatureBytes);
    bytes[0] = (bytes[0] as number) & 0x7f;
    return bytes.toString('base64');
  };
  const fields: string[] = [];
  for (let i = 0; i < o.dkim; i++) {
    fields.push(
      `DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=${o.domain}; s=${o.selector}; h=from:to:subject; bh=${bh}; b=${b()}\r\n`,
    );
  }
  for (let i = 0; i < o.domainKeys; i++) {
    fields.push(`DomainKey-Signature: a=rsa-sha1; c=simple; q=dns; d=${o.domain}; s=${o.selector}; b=${b()}\r\n`);
  }
  return Buffer.concat([Buffer.from(fields.join(''), 'latin1'), message]);
}
