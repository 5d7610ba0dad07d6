/** Something that holds bytes counted against a BufferBudget and can be made to let go of them. */
export interface BudgetHolder {
  /** Close at once and give the bytes back (release) before returning. */
  evict(reason: string): void;
}

/**
 * A byte budget shared by the connections of one server: the bytes each connection holds in
 * partly received packets and packets waiting for the handler.
 *
 * When a claim would take the total past the limit, connections are closed, largest holder
 * first, until the claim fits: a flood of connections each holding a big partial packet is
 * what gets closed, while a connection in the middle of an ordinary message (Postfix and
 * sendmail send at most 64 KiB per packet) keeps going. If the claimant itself holds the
 * most, it is the one refused.
 */
export class BufferBudget {
  private readonly held = new Map<BudgetHolder, number>();
  private total = 0;

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new RangeError(`the buffered-bytes limit must be a positive integer, not ${limit}`);
  }

  /** Bytes held by all holders together. */
  get used(): number {
    return this.total;
  }

  /** Connections holding bytes now. */
  get holders(): number {
    return this.held.size;
  }

  /**
   * Set what `holder` holds now. Returns false when it must go (it holds the most and the
   * total would pass the limit; its claim is then dropped); otherwise larger holders may have
   * been evicted to make room.
   */
  claim(holder: BudgetHolder, bytes: number): boolean {
    const before = this.held.get(holder) ?? 0;
    if (bytes <= before) {
      this.set(holder, bytes);
      return true;
    }
    this.set(holder, bytes);
    while (this.total > this.limit) {
      let largest: BudgetHolder = holder;
      let most = bytes;
      for (const [h, n] of this.held) {
        if (n > most) {
          largest = h;
          most = n;
        }
      }
      if (largest === holder) {
        this.release(holder);
        return false;
      }
      largest.evict(`all connections together would hold over ${this.limit} bytes; this one holds the most (${most} bytes)`);
      this.release(largest); // in case evict() did not
    }
    return true;
  }

  /** The holder holds nothing any more. */
  release(holder: BudgetHolder): void {
    this.set(holder, 0);
  }

  private set(holder: BudgetHolder, bytes: number): void {
    const before = this.held.get(holder) ?? 0;
    this.total += bytes - before;
    if (bytes > 0) this.held.set(holder, bytes);
    else this.held.delete(holder);
  }
}
