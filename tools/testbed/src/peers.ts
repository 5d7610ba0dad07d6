import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findProgram, runProgram, tempDir } from './process.js';

const PEERS = join(dirname(fileURLToPath(import.meta.url)), '..', 'peers');
/** Debian's python, which has python3-dkim; a python3 earlier on PATH may be another one. */
const PYTHON = '/usr/bin/python3';

/** Which independent implementations are installed here. */
export const peers = {
  dkimpy: findProgram('python3', ['/usr/bin']) !== undefined && (await hasPython('dkim')),
  mailDkim: await hasPerl('Mail::DKIM'),
  opendkim: findProgram('opendkim') !== undefined,
};

async function hasPython(module: string): Promise<boolean> {
  try {
    return (await runProgram(PYTHON, ['-c', `import ${module}, dns.resolver`])).code === 0;
  } catch {
    return false;
  }
}

async function hasPerl(module: string): Promise<boolean> {
  try {
    return (await runProgram('perl', [`-M${module}`, '-MNet::DNS', '-MJSON::PP', '-e', '1'])).code === 0;
  } catch {
    return false;
  }
}

export interface PeerSignature {
  pass: boolean;
  method?: 'dkim' | 'domainkeys';
  /** The peer's own result word (Mail::DKIM: pass, fail, invalid, temperror, none). */
  result?: string;
  reason: string;
  a: string;
  d: string;
  s: string;
}

export interface PeerVerdict {
  file: string;
  signatures: PeerSignature[];
}

function parseLines(stdout: string): PeerVerdict[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as PeerVerdict);
}

/** Verify every signature of each file with dkimpy, keys from 127.0.0.1:dnsPort. */
export async function dkimpyVerify(dnsPort: number, files: string[]): Promise<PeerVerdict[]> {
  const r = await runProgram(PYTHON, [join(PEERS, 'dkimpy.py'), 'verify', String(dnsPort), ...files], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`dkimpy verify failed (${r.code}): ${r.stderr}`);
  return parseLines(r.stdout);
}

/** Verify with Mail::DKIM (DKIM and DomainKeys signatures), keys from 127.0.0.1:dnsPort. */
export async function mailDkimVerify(dnsPort: number, files: string[]): Promise<PeerVerdict[]> {
  const r = await runProgram('perl', [join(PEERS, 'maildkim.pl'), 'verify', String(dnsPort), ...files], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`Mail::DKIM verify failed (${r.code}): ${r.stderr}`);
  return parseLines(r.stdout).map((v) => ({
    ...v,
    signatures: v.signatures.map((s) => ({ ...s, pass: s.result === 'pass' })),
  }));
}

export interface PeerSignOptions {
  domain: string;
  selector: string;
  /** "header/body" */
  canonicalization: string;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  /** RSA: PEM. Ed25519: PKCS#8 PEM (converted to dkimpy's raw seed here). */
  pem: string;
  message: Buffer;
}

function writeTemp(name: string, content: string | Buffer): string {
  const path = join(tempDir('inkan-peer-'), name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

/** Sign with dkimpy; returns the DKIM-Signature field (ending in CRLF). */
export async function dkimpySign(o: PeerSignOptions): Promise<string> {
  let key = o.pem;
  if (o.algorithm === 'ed25519-sha256') {
    const { createPrivateKey } = await import('node:crypto');
    const der = createPrivateKey(o.pem).export({ format: 'der', type: 'pkcs8' });
    key = der.subarray(der.length - 32).toString('base64');
  }
  const keyFile = writeTemp('key', key);
  const msgFile = writeTemp('msg.eml', o.message);
  const r = await runProgram(PYTHON, [
    join(PEERS, 'dkimpy.py'),
    'sign',
    keyFile,
    o.domain,
    o.selector,
    o.algorithm,
    o.canonicalization,
    msgFile,
  ]);
  if (r.code !== 0 || !r.stdout.startsWith('DKIM-Signature:')) throw new Error(`dkimpy sign failed (${r.code}): ${r.stderr}`);
  return r.stdout.endsWith('\r\n') ? r.stdout : `${r.stdout.replace(/\n$/, '')}\r\n`;
}

/** Sign with Mail::DKIM (rsa-sha256 only); returns the DKIM-Signature field (ending in CRLF). */
export async function mailDkimSign(o: PeerSignOptions): Promise<string> {
  if (o.algorithm !== 'rsa-sha256') throw new Error('Mail::DKIM here signs rsa-sha256 only');
  const keyFile = writeTemp('key.pem', o.pem);
  const msgFile = writeTemp('msg.eml', o.message);
  const r = await runProgram('perl', [join(PEERS, 'maildkim.pl'), 'sign', keyFile, o.domain, o.selector, o.canonicalization, msgFile]);
  if (r.code !== 0 || !r.stdout.startsWith('DKIM-Signature:')) throw new Error(`Mail::DKIM sign failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/**
 * Verify with OpenDKIM's test mode (-t). It reports only the first (topmost)
 * signature and exits 0 either way, so its message is parsed.
 */
export async function opendkimVerify(dnsPort: number, file: string): Promise<{ pass: boolean; output: string }> {
  const opendkim = findProgram('opendkim');
  if (!opendkim) throw new Error('opendkim is not installed');
  const conf = writeTemp('opendkim.conf', `Mode v\nNameservers 127.0.0.1@${dnsPort}\nSyslog no\nMinimumKeyBits 1024\n`);
  const r = await runProgram(opendkim, ['-x', conf, '-t', file], { timeoutMs: 60_000 });
  const output = `${r.stdout}${r.stderr}`.trim();
  return { pass: /verification \(.*\) succeeded/.test(output) || / succeeded$/m.test(output), output };
}

/**
 * Sign with OpenDKIM's test mode (-t with a signing configuration), which prints the
 * DKIM-Signature field after a "opendkim: FILE:" line. Returns the field with CRLF.
 */
export async function opendkimSign(o: PeerSignOptions): Promise<string> {
  const opendkim = findProgram('opendkim');
  if (!opendkim) throw new Error('opendkim is not installed');
  const keyFile = writeTemp('key.pem', o.pem);
  const msgFile = writeTemp('msg.eml', o.message);
  const conf = writeTemp(
    'sign.conf',
    [
      'Mode s',
      `Domain ${o.domain}`,
      `Selector ${o.selector}`,
      `KeyFile ${keyFile}`,
      'Syslog no',
      // The key sits in a private temp folder, which OpenDKIM's safe-keys check cannot judge.
      'RequireSafeKeys no',
      `Canonicalization ${o.canonicalization}`,
      `SignatureAlgorithm ${o.algorithm}`,
      '',
    ].join('\n'),
  );
  const r = await runProgram(opendkim, ['-x', conf, '-t', msgFile], { timeoutMs: 60_000 });
  const at = r.stdout.indexOf('DKIM-Signature:');
  if (r.code !== 0 || at < 0) throw new Error(`opendkim sign failed (${r.code}): ${r.stdout}${r.stderr}`);
  const field = r.stdout
    .slice(at)
    .replace(/\r?\n$/, '')
    .replace(/\r?\n/g, '\r\n');
  return `${field}\r\n`;
}
