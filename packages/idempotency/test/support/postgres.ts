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
  options: {
    clock?: Clock
    table?: string
    channel?: string
    leaseMs?: number
    durableClaims?: boolean
    /** Added to the pool's configuration (its size, startup options). */
    pool?: pg.PoolConfig
  } = {},
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
  const pool = new pg.Pool({ connectionString: inject('postgresUrl'), max: 20, ...options.pool })
  const store = await createPostgresStore({
    pool,
    tableName: table,
    channel,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    ...(options.durableClaims === undefined ? {} : { durableClaims: options.durableClaims }),
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

/**
 * Ends, as a crash would, the database session of every instance that holds a claim in
 * `table`: the session's advisory lock goes with it. Resolves once the sessions are gone.
 */
export async function killClaimHolders(pool: pg.Pool, table: string): Promise<number> {
  const { rows } = await pool.query<{ killed: boolean }>(
    `SELECT pg_terminate_backend(i.backend_pid, 5000) AS killed
       FROM ${table}_instances i
      WHERE EXISTS (SELECT 1 FROM ${table} r WHERE r.instance_id = i.id AND r.state = 'in_progress')`,
  )
  return rows.filter((row) => row.killed).length
}
