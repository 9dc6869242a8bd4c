/**
 * Settings that cannot work are refused at start: an idempotency record must outlive every claim
 * on it, so its TTL must exceed both the lease and the request deadline.
 */
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../src/config.js'
import { MAIN_JS, runNode, tempDatabase } from './support/server.js'

const refusal = (env: Record<string, string>): string | undefined => {
  try {
    loadConfig(env)
    return undefined
  } catch (error) {
    if (error instanceof ConfigError) return error.message
    throw error
  }
}

describe('the idempotency TTL', () => {
  it.each([
    [
      '1 s against the default 10 s deadline',
      { IDEMPOTENCY_TTL_SECONDS: '1', IDEMPOTENCY_LEASE_MS: '100' },
    ],
    ['equal to the deadline', { IDEMPOTENCY_TTL_SECONDS: '10', IDEMPOTENCY_LEASE_MS: '100' }],
    [
      'shorter than a longer deadline',
      { IDEMPOTENCY_TTL_SECONDS: '60', REQUEST_DEADLINE_MS: '120000' },
    ],
    ['equal to the default 30 s lease', { IDEMPOTENCY_TTL_SECONDS: '30' }],
    [
      'shorter than a longer lease',
      { IDEMPOTENCY_TTL_SECONDS: '600', IDEMPOTENCY_LEASE_MS: '900000' },
    ],
  ])('is refused when %s, naming the three settings', (_name, env) => {
    const message = refusal(env)
    expect(message).toBeDefined()
    for (const name of ['IDEMPOTENCY_TTL_SECONDS', 'IDEMPOTENCY_LEASE_MS', 'REQUEST_DEADLINE_MS'])
      expect(message).toContain(name)
  })

  it.each([
    ['the defaults', {}],
    ['just past the lease and the deadline', { IDEMPOTENCY_TTL_SECONDS: '31' }],
    [
      '1 s with a shorter lease and deadline',
      { IDEMPOTENCY_TTL_SECONDS: '1', IDEMPOTENCY_LEASE_MS: '100', REQUEST_DEADLINE_MS: '900' },
    ],
  ])('is accepted with %s', (_name, env) => {
    expect(refusal(env)).toBeUndefined()
  })

  it('stops the real server at start with exit code 2 and one line naming the settings', async () => {
    const database = tempDatabase()
    try {
      const result = await runNode(MAIN_JS, [], {
        DATABASE_URL: database.url,
        PORT: '0',
        LOG_LEVEL: 'silent',
        IDEMPOTENCY_TTL_SECONDS: '1',
        IDEMPOTENCY_LEASE_MS: '100',
      })
      expect(result.code).toBe(2)
      expect(result.stdout).toBe('')
      const lines = result.stderr.split('\n').filter((line) => line !== '')
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^ticksupply: IDEMPOTENCY_TTL_SECONDS .*REQUEST_DEADLINE_MS/)
    } finally {
      database.cleanup()
    }
  })
})
