/** Operations per second of `fn`, run one after another for about `minMs` (bounded by `maxIterations`). */
export async function rate(fn: () => unknown, minMs: number, maxIterations = 1_000_000): Promise<number> {
  await fn();
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < minMs && n < maxIterations) {
    await fn();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

/**
 * Operations per second with `inFlight` operations always running (as a server signs
 * several messages at once): the thread pool can use every core.
 */
export async function concurrentRate(
  fn: () => Promise<unknown>,
  inFlight: number,
  minMs: number,
  maxIterations = 1_000_000,
): Promise<number> {
  await fn();
  let n = 0;
  const start = performance.now();
  const worker = async () => {
    while (performance.now() - start < minMs && n < maxIterations) {
      n++;
      await fn();
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return n / ((performance.now() - start) / 1000);
}
