/**
 * The Database interface's transactions on PostgreSQL: `durable: false` is for bookkeeping
 * (the rate-limit buckets) that must not wait for the disk on every request.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { parseDatabaseUrl } from '../src/config.js'
import type { Database } from '../src/db/database.js'
import { openDatabase } from '../src/db/open-database.js'
import { isDatabaseUnavailable } from '../src/db/database-errors.js'
import { createTestDatabase } from '../../../test-support/postgres-database.js'

describe('a PostgreSQL transaction', () => {
  let db: Database
  let databaseUrl = ''

  beforeAll(async () => {
    const url = await createTestDatabase(inject('postgresUrl'))
    databaseUrl = url
    // The test server runs without synchronous commits; this database asks for them, as a
    // production one would, so that the difference shows.
    const admin = new pg.Client({ connectionString: url })
    await admin.connect()
    await admin.query(
      `ALTER DATABASE "${new URL(url).pathname.slice(1)}" SET synchronous_commit = on`,
    )
    await admin.end()
    db = openDatabase(parseDatabaseUrl(url)).db
  })
  afterAll(async () => {
    await db.close()
  })

  const setting = (tx: Parameters<Parameters<Database['transaction']>[0]>[0]) =>
    tx.get<{ synchronous_commit: string }>('SHOW synchronous_commit')

  it('commits durably by default, and without waiting for the disk when asked, for itself alone', async () => {
    expect((await db.transaction(setting))?.synchronous_commit).toBe('on')
    expect((await db.transaction(setting, { durable: false }))?.synchronous_commit).toBe('off')
    // SET LOCAL: the pooled connection is back to durable commits for the next transaction.
    const after = await Promise.all(Array.from({ length: 25 }, () => db.transaction(setting)))
    expect(after.map((row) => row?.synchronous_commit)).toEqual(
      Array.from({ length: 25 }, () => 'on'),
    )
  })

  it.each([
    ['a statement timeout', "SET LOCAL statement_timeout = '10ms'", 'SELECT pg_sleep(1)', '57014'],
    [
      'a database that takes no writes (a standby during a failover)',
      'SET TRANSACTION READ ONLY',
      'CREATE TEMPORARY TABLE t (x int)',
      '25006',
    ],
  ])(
    'counts %s as the database being unavailable, not as a bug',
    async (_name, setUp, statement, code) => {
      const error = await db
        .transaction(async (tx) => {
          await tx.run(setUp)
          return tx.run(statement)
        })
        .then(
          () => undefined,
          (reason: unknown) => reason,
        )
      expect((error as { code?: string } | undefined)?.code).toBe(code)
      expect(isDatabaseUnavailable(error)).toBe(true)
    },
  )

  it('survives the database ending the session of a transaction between two statements', async () => {
    const uncaught: unknown[] = []
    const record = (error: unknown) => uncaught.push(error)
    process.on('uncaughtException', record)
    try {
      const killer = new pg.Client({ connectionString: databaseUrl })
      await killer.connect()
      try {
        const outcome = await db
          .transaction(async (tx) => {
            const row = await tx.get<{ pid: number }>('SELECT pg_backend_pid() AS pid')
            await killer.query('SELECT pg_terminate_backend($1, 5000)', [row?.pid])
            // Idle in the transaction while the session ends: the client hears it now.
            await new Promise((resolve) => setTimeout(resolve, 300))
            return tx.get('SELECT 1 AS one')
          })
          .then(
            () => 'committed',
            (error: unknown) => (isDatabaseUnavailable(error) ? 'failed: unavailable' : 'failed'),
          )
        // An outage, not a bug: the server answers it 503, and an export job goes back to the
        // queue (node-postgres reports it with no code).
        expect(outcome).toBe('failed: unavailable')
      } finally {
        await killer.end()
      }
      expect(uncaught).toEqual([])
      // The broken client left the pool: the next transaction gets a live one.
      expect(await db.transaction((tx) => tx.get<{ one: number }>('SELECT 1 AS one'))).toEqual({
        one: 1,
      })
    } finally {
      process.off('uncaughtException', record)
    }
  })
})
