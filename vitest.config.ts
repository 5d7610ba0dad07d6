import { defineConfig } from 'vitest/config';

// One run over every package and app; each keeps its tests in its own test/ folder.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
  },
});
