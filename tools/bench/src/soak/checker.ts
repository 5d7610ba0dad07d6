/**
 * The soak's judge at the sink: each delivered message is matched to the plan by its
 * Message-ID and checked for what must have happened to it. Mail milterd signed must carry
 * its DKIM-Signatures for our domain and verify (dkim-core, keys in memory); outside mail
 * must carry exactly one Authentication-Results of ours saying pass, fail or none as planned.
 * Only counts and a bounded list of problems are kept.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type KeyResolver, parseAuthenticationResults, verifyMessage } from '@inkan/dkim-core';
import { authenticationResults, headerFields } from '@inkan/testbed';
import { indexOfMessageId, type Kind, KINDS, OUR_DOMAIN, OUTSIDE_DOMAIN } from './corpus.js';

export interface CheckerOptions {
  runId: string;
  /** Kind of each planned message, by index. */
  kinds: readonly Kind[];
  authservId: string;
  /** Our keys, for checking the signatures milterd made. */
  resolver: KeyResolver;
  /** Signatures milterd adds to each message it signs (one per signing key). */
  signaturesPerMessage: number;
  /** Where sample files go (for the independent verifiers) and failing messages. */
  dir: string;
  /** Is this message one of the sample for the independent verifiers? */
  sampled: (index: number, kind: Kind) => boolean;
}

export type CountsByKind = Record<Kind, number>;

const zero = (): CountsByKind => ({ sign: 0, good: 0, tampered: 0, unsigned: 0 });

function signatureDomain(value: string): string | undefined {
  const m = /(?:^|;)d=([^;]+)/.exec(value.replace(/\s+/g, ''));
  return m?.[1]?.toLowerCase();
}

export class Checker {
  /** Deliveries per planned index. */
  readonly deliveries: Uint16Array;
  readonly delivered = zero();
  /** Sign: carry `signaturesPerMessage` of our signatures that dkim-core verifies. */
  readonly signedOk = zero();
  /** Sign: no signature of ours at all. */
  unsigned = 0;
  /** Sign: signed, but not as expected (count, or dkim-core says not pass). */
  badSignature = 0;
  /** Outside mail with the planned Authentication-Results (pass / fail / none). */
  readonly verdictOk = zero();
  /** Outside mail whose Authentication-Results is missing, doubled, or says something else. */
  readonly verdictWrong = zero();
  /** Outside mail that came out with a signature of our domain (it must not be signed). */
  signedByUsWrongly = 0;
  /** Messages not of this run (no Message-ID of ours). */
  strangers = 0;
  bytes = 0;
  /** Arrival time (ms since start) of the last message. */
  lastArrival = 0;
  readonly problems: string[] = [];
  readonly samples: Array<{ index: number; kind: Kind; file: string }> = [];
  private readonly pending = new Set<Promise<void>>();
  private failedFiles = 0;

  constructor(
    private readonly options: CheckerOptions,
    private readonly clock: () => number,
  ) {
    this.deliveries = new Uint16Array(options.kinds.length);
  }

  get totalDelivered(): number {
    return KINDS.reduce((sum, k) => sum + this.delivered[k], 0) + this.strangers;
  }

  private problem(text: string, index: number | undefined, message: Buffer): void {
    if (this.problems.length < 50) this.problems.push(text);
    if (this.failedFiles < 20) {
      this.failedFiles++;
      writeFileSync(join(this.options.dir, `problem-${index ?? `stranger-${this.strangers}`}.eml`), message);
    }
  }

  /** Take one delivered message (called by the sink, synchronously; slow checks run after). */
  take(message: Buffer): void {
    this.bytes += message.length;
    this.lastArrival = this.clock();
    const fields = headerFields(message);
    const idField = fields.find((f) => f.name.toLowerCase() === 'message-id');
    const index = idField ? indexOfMessageId(this.options.runId, idField.value) : undefined;
    if (index === undefined || index >= this.options.kinds.length) {
      this.strangers++;
      this.problem(`a message not of this run arrived (Message-ID ${idField?.value.trim() ?? 'none'})`, undefined, message);
      return;
    }
    const kind = this.options.kinds[index] as Kind;
    this.deliveries[index] = Math.min(65535, (this.deliveries[index] ?? 0) + 1);
    this.delivered[kind]++;
    if ((this.deliveries[index] ?? 0) > 1) {
      this.problem(`message ${index} delivered ${this.deliveries[index]} times`, index, message);
      return;
    }
    const ours = fields.filter((f) => f.name.toLowerCase() === 'dkim-signature' && signatureDomain(f.value) === OUR_DOMAIN);
    const ar = authenticationResults(message, parseAuthenticationResults, this.options.authservId);
    if (this.options.sampled(index, kind)) {
      const file = join(this.options.dir, `sample-${index}.eml`);
      writeFileSync(file, message);
      this.samples.push({ index, kind, file });
    }
    if (kind === 'sign') {
      if (ours.length === 0) {
        this.unsigned++;
        this.problem(`message ${index} should be signed but has no DKIM-Signature of ${OUR_DOMAIN}`, index, message);
        return;
      }
      if (ours.length !== this.options.signaturesPerMessage || ar.length > 0) {
        this.badSignature++;
        this.problem(
          `message ${index}: ${ours.length} signatures of ${OUR_DOMAIN} (expected ${this.options.signaturesPerMessage}), ${ar.length} Authentication-Results of ours (expected 0)`,
          index,
          message,
        );
        return;
      }
      const check = verifyMessage(message, { resolver: this.options.resolver }).then(
        (results) => {
          const mine = results.filter((r) => r.domain === OUR_DOMAIN);
          if (mine.length === this.options.signaturesPerMessage && mine.every((r) => r.result === 'pass')) this.signedOk.sign++;
          else {
            this.badSignature++;
            this.problem(
              `message ${index}: dkim-core says ${mine.map((r) => `${r.algorithm} ${r.result} ${r.reason ?? ''}`).join(', ')}`,
              index,
              message,
            );
          }
        },
        (error: Error) => {
          this.badSignature++;
          this.problem(`message ${index}: dkim-core could not verify it: ${error.message}`, index, message);
        },
      );
      this.pending.add(check);
      void check.finally(() => this.pending.delete(check));
      return;
    }
    if (ours.length > 0) {
      this.signedByUsWrongly++;
      this.problem(`outside message ${index} (${kind}) came out signed by ${OUR_DOMAIN}`, index, message);
    }
    const expected = kind === 'good' ? 'pass' : kind === 'tampered' ? 'fail' : 'none';
    const dkim = ar.length === 1 ? (ar[0]?.results ?? []).filter((r) => r.method === 'dkim') : [];
    const d = dkim[0]?.properties.find((p) => p.ptype === 'header' && p.property === 'd')?.value;
    const ok = ar.length === 1 && dkim.length === 1 && dkim[0]?.result === expected && (expected === 'none' || d === OUTSIDE_DOMAIN);
    if (ok) this.verdictOk[kind]++;
    else {
      this.verdictWrong[kind]++;
      const said = ar.map((a) => a.results.map((r) => `${r.method}=${r.result}${r.reason ? ` (${r.reason})` : ''}`).join('; ')).join(' | ');
      this.problem(
        `outside message ${index} (${kind}): expected dkim=${expected}, got ${ar.length} Authentication-Results of ours: ${said || '-'}`,
        index,
        message,
      );
    }
  }

  /** Wait (bounded) for the signature checks still running. */
  async settle(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let guard = 0; this.pending.size > 0 && Date.now() < deadline && guard < 10_000; guard++) {
      await Promise.race([Promise.allSettled([...this.pending]), new Promise((r) => setTimeout(r, 1000))]);
    }
  }

  /** Planned messages never delivered, and extra deliveries. */
  tally(): { lost: number; duplicates: number; lostIndexes: number[] } {
    let lost = 0;
    let duplicates = 0;
    const lostIndexes: number[] = [];
    for (let i = 0; i < this.deliveries.length; i++) {
      const n = this.deliveries[i] ?? 0;
      if (n === 0) {
        lost++;
        if (lostIndexes.length < 20) lostIndexes.push(i);
      } else duplicates += n - 1;
    }
    return { lost, duplicates, lostIndexes };
  }
}
