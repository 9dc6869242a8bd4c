import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { inject } from 'vitest'
import type { Clock } from '@ticksupply/idempotency'
import type { PostgresStore } from '@ticksupply/idempotency/stores/postgres'
import { createPostgresStore } from '@ticksupply/idempotency/stores/postgres'

/**
 * A store on the test run's PostgreSQL server, in a table and notification channel of its own,
 * so that tests never see each other's records.
 */
export async function openTemporaryPostgres(
  options: { clock?: Clock; table?: string; channel?: string } = {},
): Promise<{
  pool: pg.Pool
  store: PostgresStore
  table: string
  channel: string
  close: () => Promise<void>
}> {
  const suffix = randomBytes(6).toString('hex')
  const table = options.table ?? `records_${suffix}`
  const channel = options.channel ?? `wake_${suffix}`
  const pool = new pg.Pool({ connectionString: inject('postgresUrl'), max: 20 })
  const store = await createPostgresStore({
    pool,
    tableName: table,
    channel,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  })
  return {
    pool,
    store,
    table,
    channel,
    close: async () => {
      await store.close()
      await pool.end()
    },
  }
}
