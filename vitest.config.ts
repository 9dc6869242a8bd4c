import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    globalSetup: ['./test-support/services.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      {
        test: {
          name: 'idempotency',
          include: ['packages/idempotency/test/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'server',
          include: ['packages/server/test/**/*.test.ts'],
        },
      },
    ],
  },
})
