import { defineConfig } from 'vitest/config'

// Timeouts are per project: projects do not inherit the root's. Generous, since the tests
// start real servers and processes on a 2-core machine; no test asserts a duration.
const timeouts = { testTimeout: 60_000, hookTimeout: 60_000 }

export default defineConfig({
  test: {
    // Three test files at a time on a 2-core machine (Vitest's default would be one): most of
    // a file's time is spent waiting on the server processes, databases and sockets it drives.
    // Every file uses its own databases, ports and Redis key prefixes.
    maxWorkers: 3,
    // Starts PostgreSQL and Redis once for the whole run.
    globalSetup: ['./test-support/services.ts'],
    reporters: ['default', './test-support/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'idempotency',
          include: ['packages/idempotency/test/**/*.test.ts'],
          ...timeouts,
        },
      },
      {
        test: {
          name: 'server',
          include: ['packages/server/test/**/*.test.ts'],
          ...timeouts,
        },
      },
      {
        // The same HTTP suite against PostgreSQL. Left out: files that are about SQLite by nature
        // (crash and restart on one file, the key CLI on a file), and files that already cover
        // both backends themselves (multi-instance, the rate-limit stores).
        test: {
          name: 'server-postgres',
          include: ['packages/server/test/**/*.test.ts'],
          exclude: [
            'packages/server/test/{crash,cli,multi-instance,rate-limit,sqlite-lock}.test.ts',
            '**/node_modules/**',
          ],
          env: { TEST_DATABASE: 'postgres' },
          ...timeouts,
        },
      },
      'packages/client/vitest.config.ts',
      {
        // The conformance command, run as a child process against the real server (SQLite and
        // PostgreSQL) and against the example apps, correct and deliberately broken.
        test: {
          name: 'conformance',
          include: ['packages/conformance/test/**/*.test.ts'],
          ...timeouts,
          testTimeout: 180_000,
        },
      },
    ],
  },
})
