import { defineProject } from 'vitest/config';

export default defineProject({
  // The targets import @inkan/milterd/internal, exported under this condition only (as the
  // fuzz script's `node --conditions=inkan-internal`); the rest are Vite's defaults for Node.
  ssr: { resolve: { conditions: ['inkan-internal', 'module', 'node', 'development|production'] } },
  test: {
    name: 'fuzz',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
