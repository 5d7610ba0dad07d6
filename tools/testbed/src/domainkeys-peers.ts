import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProgram, tempDir } from './process.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', 'peers', 'maildkim-domainkeys.pl');

export interface DomainKeysSignOptions {
  domain: string;
  selector: string;
  /** DomainKeys canonicalization (c=). */
  canonicalization: 'simple' | 'nofws';
  /** Names for h=; absent or empty: no h= tag, so every header field is signed. */
  headers?: string[];
  /** Also add a DKIM-Signature (rsa-sha256, relaxed/relaxed) with the same key and selector. */
  withDkim?: boolean;
  /** RSA private key, PEM (PKCS#8 or PKCS#1). */
  pem: string;
  /** The message, CRLF line ends. */
  message: Buffer;
}

/**
 * Sign a message for DomainKeys with Mail::DKIM (Signer plus a signing policy that adds a
 * Mail::DKIM::DkSignature). Returns the new header fields, each ending in CRLF, ready to
 * be put on top of the message (a DKIM-Signature, when asked for, comes first).
 */
export async function mailDkimDomainKeysSign(o: DomainKeysSignOptions): Promise<string> {
  const dir = tempDir('inkan-dk-peer-');
  const keyFile = join(dir, 'key.pem');
  const msgFile = join(dir, 'msg.eml');
  const args = [SCRIPT, 'sign', '--canon', o.canonicalization];
  if (o.headers && o.headers.length > 0) args.push('--headers', o.headers.join(':'));
  if (o.withDkim) args.push('--dkim');
  args.push(keyFile, o.domain, o.selector, msgFile);
  let r: Awaited<ReturnType<typeof runProgram>>;
  try {
    writeFileSync(keyFile, o.pem, { mode: 0o600 });
    writeFileSync(msgFile, o.message, { mode: 0o600 });
    r = await runProgram('perl', args, { timeoutMs: 60_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (r.code !== 0 || !/^(DKIM|DomainKey)-Signature:/.test(r.stdout)) {
    throw new Error(`Mail::DKIM DomainKeys sign failed (${r.code}): ${r.stderr}`);
  }
  return r.stdout;
}

export interface DomainKeysPeerSignature {
  method: 'dkim' | 'domainkeys';
  /** Mail::DKIM's own result word: pass, fail, invalid, temperror, ... */
  result: string;
  /** Mail::DKIM's verify details ("bad identity", "public key: revoked", ...). */
  detail: string;
  a: string;
  d: string;
  s: string;
  /** DomainKeys: the sender address Mail::DKIM took from Sender or From. */
  identity?: string;
  /** DomainKeys: "header.sender" or "header.from" (empty when none was found). */
  identity_source?: string;
}

export interface DomainKeysPeerVerdict {
  file: string;
  signatures: DomainKeysPeerSignature[];
}

/**
 * Verify files with Mail::DKIM's default (non-strict) Verifier, keys from
 * 127.0.0.1:dnsPort; reports the DomainKeys identity as well as the result.
 */
export async function mailDkimDomainKeysVerify(dnsPort: number, files: string[]): Promise<DomainKeysPeerVerdict[]> {
  const r = await runProgram('perl', [SCRIPT, 'verify', String(dnsPort), ...files], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`Mail::DKIM DomainKeys verify failed (${r.code}): ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as DomainKeysPeerVerdict);
}
