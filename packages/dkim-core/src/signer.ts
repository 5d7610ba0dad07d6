import { Buffer } from 'node:buffer';
import type { KeyObject } from 'node:crypto';
import { BodyHashSet, type BodyHasher } from './body-hash.js';
import type { Canonicalization } from './canonicalization/body.js';
import { relaxedHeader } from './canonicalization/header.js';
import { signData } from './crypto.js';
import { DkimError } from './errors.js';
import { headerHashInput, selectSignedFields } from './header-hash.js';
import { parsePrivateKey } from './keys.js';
import {
  DEFAULT_MAX_HEADER_BYTES,
  feedMessage,
  type HeaderField,
  type LineEndings,
  type MessageInput,
  type MessageSink,
} from './message.js';
import {
  algorithmParts,
  appendFolded,
  encodeDkimQuotedPrintable,
  type FormatTag,
  formatFoldedTags,
  isSameOrSubdomain,
  type SigningAlgorithm,
} from './signature.js';

/**
 * Fields signed by default when present: RFC 6376 §5.4.1's list plus the fields that
 * identify and shape a message (as OpenDKIM signs them).
 */
export const DEFAULT_SIGNED_HEADERS: readonly string[] = [
  'from',
  'sender',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'to',
  'cc',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'content-id',
  'content-description',
  'resent-date',
  'resent-from',
  'resent-sender',
  'resent-to',
  'resent-cc',
  'resent-message-id',
  'in-reply-to',
  'references',
  'list-id',
  'list-help',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'list-subscribe',
  'list-post',
  'list-owner',
  'list-archive',
];

/** Fields listed once more than they occur, so that none can be added later (default: From). */
export const DEFAULT_OVERSIGNED_HEADERS: readonly string[] = ['from'];

export interface SignatureOptions {
  /** d=, the signing domain. */
  domain: string;
  /** s= */
  selector: string;
  /** PEM (PKCS#1 or PKCS#8) or a parsed KeyObject; pass a KeyObject when signing many messages. */
  privateKey: string | Buffer | KeyObject;
  /** Default: from the key type (rsa-sha256 or ed25519-sha256). */
  algorithm?: SigningAlgorithm;
  /** "header/body" (default "relaxed/relaxed"); one word alone means "word/simple", as in c=. */
  canonicalization?: string;
  /** Field names to sign when present (default DEFAULT_SIGNED_HEADERS). */
  headers?: readonly string[];
  /** Field names to list once more than they occur (default DEFAULT_OVERSIGNED_HEADERS). */
  oversignHeaders?: readonly string[];
  /** i=, the AUID; must be in domain or a subdomain. */
  identity?: string;
  /** Seconds until the signature expires (x=); default none. */
  expiresIn?: number;
  /** Write t= (default true). */
  timestamp?: boolean;
  /** Write l= with the length of the body signed (default false: l= invites appended content). */
  bodyLength?: boolean;
  /** Write z= with copies of the signed fields (default false). */
  copyHeaders?: boolean;
}

export interface SignerOptions {
  /** Current time in milliseconds (default Date.now). */
  now?: () => number;
  /** Body hashers shared with a Verifier; the caller then feeds them and body() does nothing. */
  bodyHashes?: BodyHashSet;
  /** Header bytes accepted (default 1 MiB). */
  maxHeaderBytes?: number;
  /**
   * Where RSA signatures are made. 'pool' (the default for a Signer): on libuv's thread pool,
   * so the event loop never waits for one and several messages use every core. 'when-alone'
   * (signMessage's default): on the main thread when no other Signer in this process is in
   * progress and the key has at most 2048 bits, sparing the round trip to the pool.
   */
  rsaThread?: 'pool' | 'when-alone';
  /**
   * signMessage only: 'normalize' (default) turns each bare LF of the message into CRLF
   * before it is signed, so an LF-only file or nodemailer's output is signed as it will
   * travel; 'as-is' signs the bytes as given. A Signer's header() and body() take fields
   * and chunks as given (a milter's are CRLF); to stream raw bytes into a Signer, use
   * MessageParser with this option.
   */
  lineEndings?: LineEndings;
}

/** A signature made: the field name and value for a milter, and the whole field. */
export interface SignatureField {
  name: 'DKIM-Signature';
  /** Everything after the colon (starts with a space; folded with CRLF + HTAB). */
  value: string;
  /** "DKIM-Signature: ..." without the final CRLF. */
  field: string;
}

interface PreparedSignature {
  options: SignatureOptions;
  /** Lowercased names to sign, oversigned ones included, From first when missing. */
  wanted: string[];
  /** Oversigned names: lowercased name to the name as configured, in configured order. */
  oversign: Map<string, string>;
  key: KeyObject;
  algorithm: SigningAlgorithm;
  headerCanonicalization: Canonicalization;
  bodyCanonicalization: Canonicalization;
  hasher?: BodyHasher;
}

const DOMAIN = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\.)*[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$/;

function parseCanonicalization(value: string | undefined): [Canonicalization, Canonicalization] {
  const m = /^(simple|relaxed)(?:\/(simple|relaxed))?$/.exec(value ?? 'relaxed/relaxed');
  if (!m) throw new DkimError('INVALID_OPTION', `canonicalization must be simple or relaxed, as "header/body": got "${value}"`);
  // As in c= and OpenDKIM's Canonicalization: one word names the header method; the body is simple.
  return [m[1] as Canonicalization, (m[2] ?? 'simple') as Canonicalization];
}

function prepare(options: SignatureOptions): PreparedSignature {
  if (!options || typeof options !== 'object') throw new DkimError('INVALID_OPTION', 'signature options are required');
  if (!DOMAIN.test(options.domain ?? '')) throw new DkimError('INVALID_OPTION', `invalid domain "${options.domain}"`);
  if (!DOMAIN.test(options.selector ?? '')) throw new DkimError('INVALID_OPTION', `invalid selector "${options.selector}"`);
  const { key, keyType: type, algorithm } = parsePrivateKey(options.privateKey);
  if (options.algorithm !== undefined && options.algorithm !== algorithm) {
    throw new DkimError('KEY_MISMATCH', `algorithm ${options.algorithm} does not fit a ${type} key`);
  }
  if (options.identity !== undefined) {
    const at = options.identity.lastIndexOf('@');
    if (at < 0 || !isSameOrSubdomain(options.identity.slice(at + 1), options.domain)) {
      throw new DkimError('INVALID_OPTION', `identity "${options.identity}" must be an address in ${options.domain} or a subdomain`);
    }
  }
  if (options.expiresIn !== undefined && !(options.expiresIn > 0)) {
    throw new DkimError('INVALID_OPTION', 'expiresIn must be a positive number of seconds');
  }
  const [headerCanonicalization, bodyCanonicalization] = parseCanonicalization(options.canonicalization);
  const oversign = new Map<string, string>();
  for (const name of options.oversignHeaders ?? DEFAULT_OVERSIGNED_HEADERS) {
    const key = name.toLowerCase();
    if (!oversign.has(key)) oversign.set(key, name);
  }
  const wanted = (options.headers ?? DEFAULT_SIGNED_HEADERS).map((n) => n.toLowerCase());
  for (const name of oversign.keys()) if (!wanted.includes(name)) wanted.push(name);
  if (!wanted.includes('from')) wanted.unshift('from');
  return { options, key, algorithm, headerCanonicalization, bodyCanonicalization, wanted: [...new Set(wanted)], oversign };
}

/**
 * Signers constructed and not done yet (finish() not settled) in this process. With only
 * one, a small RSA signature is made at once instead of on the thread pool (see signData).
 * A Signer dropped without finish() (an aborted message) leaves the count when it is
 * garbage-collected.
 */
let unfinished = 0;
const dropped = new FinalizationRegistry<undefined>(() => {
  unfinished--;
});

/**
 * Makes one or more DKIM signatures over one message as it streams past: feed header
 * fields, endOfHeaders(), body chunks, then await finish(). Options are checked (and
 * keys parsed) in the constructor, so a Signer fails fast on bad configuration.
 */
export class Signer implements MessageSink {
  private readonly prepared: PreparedSignature[];
  private readonly now: () => number;
  private readonly bodyHashes: BodyHashSet;
  private readonly ownsBodyHashes: boolean;
  private readonly maxHeaderBytes: number;
  private readonly rsaThread: 'pool' | 'when-alone';
  private readonly headers: HeaderField[] = [];
  private headerBytes = 0;
  private ended = false;

  constructor(signatures: SignatureOptions | readonly SignatureOptions[], options: SignerOptions = {}) {
    const list = Array.isArray(signatures) ? signatures : [signatures as SignatureOptions];
    if (list.length === 0) throw new DkimError('INVALID_OPTION', 'no signature options given');
    this.prepared = list.map(prepare);
    this.now = options.now ?? Date.now;
    this.ownsBodyHashes = !options.bodyHashes;
    this.bodyHashes = options.bodyHashes ?? new BodyHashSet();
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.rsaThread = options.rsaThread ?? 'pool';
    unfinished++;
    dropped.register(this, undefined, this);
  }

  header(field: HeaderField): void {
    if (this.ended) throw new DkimError('INVALID_OPTION', 'header() after endOfHeaders()');
    this.headerBytes += field.raw.length;
    if (this.headerBytes > this.maxHeaderBytes) {
      throw new DkimError('MESSAGE_TOO_LARGE', `header section exceeds ${this.maxHeaderBytes} bytes`);
    }
    this.headers.push(field);
  }

  endOfHeaders(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.headers.some((f) => f.name.toLowerCase() === 'from')) {
      throw new DkimError('NO_FROM', 'the message has no From field, which DKIM must sign');
    }
    for (const p of this.prepared) p.hasher = this.bodyHashes.get(p.bodyCanonicalization, 'sha256');
  }

  body(chunk: Buffer): void {
    if (!this.ended) this.endOfHeaders();
    if (this.ownsBodyHashes) this.bodyHashes.update(chunk);
  }

  /** The DKIM-Signature fields, in the order the signatures were configured. */
  async finish(): Promise<SignatureField[]> {
    if (!this.ended) this.endOfHeaders();
    const now = Math.floor(this.now() / 1000);
    const alone = this.rsaThread === 'when-alone' && unfinished === 1 && this.prepared.length === 1;
    try {
      return await Promise.all(this.prepared.map((p) => this.sign(p, now, alone)));
    } finally {
      // Only now: a message whose signature is still on the pool is still in progress.
      if (dropped.unregister(this)) unfinished--;
    }
  }

  /**
   * h=, as OpenDKIM writes it: the signed fields in message order (top to bottom), each
   * name spelled as in that field, then one more entry per oversigned name, spelled as
   * its last instance in the message or, when it has none, as configured. Entries with
   * the same name are interchangeable (a verifier gives the k-th of them the k-th
   * instance from the bottom), so the signed set is the same as listing them per name;
   * the header hash follows this list through selectSignedFields, as a verifier does.
   */
  private signedNames(p: PreparedSignature): string[] {
    const wanted = new Set(p.wanted);
    const names: string[] = [];
    const last = new Map<string, string>();
    for (const f of this.headers) {
      const key = f.name.toLowerCase();
      if (!wanted.has(key)) continue;
      names.push(f.name);
      last.set(key, f.name);
    }
    for (const [key, configured] of p.oversign) names.push(last.get(key) ?? configured);
    return names;
  }

  private async sign(p: PreparedSignature, now: number, alone: boolean): Promise<SignatureField> {
    const o = p.options;
    const body = (p.hasher as BodyHasher).digest();
    const names = this.signedNames(p);
    const selected = selectSignedFields(this.headers, names);
    const tags: FormatTag[] = [
      { name: 'v', value: '1' },
      { name: 'a', value: p.algorithm },
      { name: 'c', value: `${p.headerCanonicalization}/${p.bodyCanonicalization}` },
      { name: 'd', value: o.domain },
      { name: 's', value: o.selector },
    ];
    if (o.identity !== undefined) tags.push({ name: 'i', value: encodeDkimQuotedPrintable(Buffer.from(o.identity, 'utf8')) });
    if (o.timestamp !== false) tags.push({ name: 't', value: String(now) });
    if (o.expiresIn !== undefined) tags.push({ name: 'x', value: String(now + Math.ceil(o.expiresIn)) });
    if (o.bodyLength) tags.push({ name: 'l', value: String(body.canonicalLength) });
    tags.push({ name: 'h', value: names.join(':'), breakAfter: ':' });
    if (o.copyHeaders) {
      const copies = selected.map((f) => {
        const relaxed = relaxedHeader(f.raw);
        const colon = relaxed.indexOf(0x3a);
        return `${f.name}:${encodeDkimQuotedPrintable(relaxed.subarray(colon + 1))}`;
      });
      tags.push({ name: 'z', value: copies.join('|'), breakAfter: '|' });
    }
    tags.push({ name: 'bh', value: body.hash.toString('base64'), breakAfter: '' });
    tags.push({ name: 'b', value: '' });
    const unsigned = formatFoldedTags('DKIM-Signature', tags);
    const raw = Buffer.from(`${unsigned}\r\n`, 'latin1');
    const data = headerHashInput(selected, { name: 'DKIM-Signature', raw }, p.headerCanonicalization);
    const { keyType, hash } = algorithmParts(p.algorithm);
    const signature = await signData(keyType, hash, data, p.key, alone);
    const field = appendFolded(unsigned, signature.toString('base64'));
    return { name: 'DKIM-Signature', value: field.slice('DKIM-Signature:'.length), field };
  }
}

/**
 * Sign a message (a Buffer, or a stream of chunks: only the header is held in memory)
 * with one or more signatures. Bare LF line endings are signed as CRLF unless
 * lineEndings is 'as-is'. Returns the DKIM-Signature field(s), each ending in
 * CRLF, ready to be put in front of the message.
 */
export async function signMessage(
  message: MessageInput,
  signatures: SignatureOptions | readonly SignatureOptions[],
  options: SignerOptions = {},
): Promise<string> {
  const signer = new Signer(signatures, { rsaThread: 'when-alone', ...options });
  await feedMessage(message, signer, {
    maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
    lineEndings: options.lineEndings ?? 'normalize',
  });
  const fields = await signer.finish();
  return fields.map((f) => `${f.field}\r\n`).join('');
}
