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
