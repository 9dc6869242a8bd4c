import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { createTestDatabase } from '../../../test-support/postgres-database.js'
import { CHECKS } from '../src/index.js'
import { leftoversOf } from './support/leftovers.js'
import { idsWith, runReport } from './support/run-command.js'
import type { ServerProcess } from './support/server-process.js'
import {
  ACME_KEY,
  ACME_SECOND_KEY,
  GLOBEX_KEY,
  startServerProcess,
} from './support/server-process.js'

const keys = [
  '--api-key',
  ACME_KEY,
  '--other-account-key',
  GLOBEX_KEY,
  '--same-account-key',
  ACME_SECOND_KEY,
]
const needsSlow = CHECKS.filter((check) => check.requires?.includes('slow')).map((c) => c.id)

const OPERATION_DELAY_MS = 6000

describe.each(['sqlite', 'postgres'] as const)('the Ticksupply server on %s', (database) => {
  const databaseUrl = async () =>
    database === 'postgres' ? createTestDatabase(inject('postgresUrl')) : undefined

  describe('started as npm start does', () => {
    let server: ServerProcess
    beforeAll(async () => {
      server = await startServerProcess(await databaseUrl())
    })
    afterAll(async () => {
      await server.stop()
    })

    it('passes every check that needs no slow operation, and says why the others did not run', async () => {
      const { code, report } = await runReport(['--base-url', server.url, ...keys])
      expect(idsWith(report, 'failed')).toEqual([])
      expect(code).toBe(0)
      expect(idsWith(report, 'not_run')).toEqual(needsSlow)
      for (const check of report.checks.filter((c) => c.status === 'not_run')) {
        expect(check.reason).toContain('--slow-header')
      }
      expect(idsWith(report, 'passed')).toHaveLength(CHECKS.length - needsSlow.length)
      // It left the accounts as it found them (empty).
      expect(report.cleanup.problems).toEqual([])
      expect(report.cleanup.deletedSubscriptions).toBeGreaterThan(0)
      expect(await leftoversOf(server.url, ACME_KEY)).toEqual({
        subscriptions: 0,
        exportSchemas: 0,
      })
      expect(await leftoversOf(server.url, GLOBEX_KEY)).toEqual({
        subscriptions: 0,
        exportSchemas: 0,
      })
    })
  })

  describe(`started with TICKSUPPLY_TEST_HANDLER_DELAY_MS=${String(OPERATION_DELAY_MS)}`, () => {
    let server: ServerProcess
    beforeAll(async () => {
      server = await startServerProcess(await databaseUrl(), {
        TICKSUPPLY_TEST_HANDLER_DELAY_MS: String(OPERATION_DELAY_MS),
      })
    })
    afterAll(async () => {
      await server.stop()
    })

    it('passes the waiting checks: replay after a wait, 409 with Retry-After: 1, a client that left', async () => {
      const { code, report } = await runReport([
        '--base-url',
        server.url,
        ...keys,
        '--server-delay-ms',
        String(OPERATION_DELAY_MS),
        '--only',
        'waiting,exit',
      ])
      expect(report.checks.map((check) => [check.id, check.status])).toEqual(
        needsSlow.map((id) => [id, 'passed']),
      )
      expect(code).toBe(0)
      expect(await leftoversOf(server.url, ACME_KEY)).toEqual({
        subscriptions: 0,
        exportSchemas: 0,
      })
    })
  })
})
