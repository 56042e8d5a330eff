import { defineConfig } from 'vitest/config';

// Two projects: `unit` runs anywhere in seconds; `e2e` needs root, the built SEA in dist/bin
// (npm test builds it first) and the Debian packages from scripts/setup-host. E2E files run
// one at a time: each starts a private containerd and the 2-core machine is the limit.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/e2e/**'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
