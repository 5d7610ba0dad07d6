import { defineConfig } from 'vitest/config';

// One run over every package and app; each keeps its tests in its own test/ folder.
// tools/fuzz replays the fuzzers' seeds and every input that once crashed them;
// tools/testbed checks its own servers and clients against each other.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'tools/fuzz', 'tools/testbed'],
  },
});
