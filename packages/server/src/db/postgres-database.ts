import pg from 'pg'
import type { Pool, PoolClient } from 'pg'
import type { PostgresTransaction } from '@ticksupply/idempotency/stores/postgres'
import type { Database, Queryable, SqlValue, Transaction } from './database.js'
import { toNumberedPlaceholders } from './placeholders.js'

// int8 (BIGINT, COUNT(*)) arrives as text: a number where that is exact, a bigint where it is
// not (nanosecond timestamps), never a silently rounded number.
pg.types.setTypeParser(pg.types.builtins.INT8, (text) => {
  const value = Number(text)
  return Number.isSafeInteger(value) ? value : BigInt(text)
})

/** Opens the pool the application and the idempotency store share. */
export function openPostgresPool(
  url: string,
  options: { readonly idleInTransactionTimeoutMs?: number } = {},
): Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 20,
    // A process frozen inside a transaction (SIGSTOP, a VM paused, a partition that keeps the
    // TCP connection open) holds its row locks until PostgreSQL ends its session: every other
    // instance's request for the same rows (an account's rate-limit bucket, a resource) would
    // wait for it, its keys included. The database ends such a session after this long.
    ...(options.idleInTransactionTimeoutMs === undefined
      ? {}
      : { idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs }),
  })
  // An idle client that loses its connection emits here; without a listener the process would
  // crash. The pool drops the client, and the next query that needs the server reports it.
  pool.on('error', () => undefined)
  return pool
}

/**
 * The application's queries on PostgreSQL: the same SQL as SQLite (`?` placeholders), and
 * transactions on one pooled client that the idempotency store joins to commit the response.
 */
export function createPostgresDatabase(pool: Pool): Database {
  const texts = new Map<string, string>()
  const text = (sql: string): string => {
    let converted = texts.get(sql)
    if (converted === undefined) {
      converted = toNumberedPlaceholders(sql)
      texts.set(sql, converted)
    }
    return converted
  }

  const on = (executor: Pool | PoolClient): Queryable => ({
    async all<Row>(sql: string, params: readonly SqlValue[] = []) {
      const result = await executor.query(text(sql), [...params])
      return result.rows as Row[]
    },
    async get<Row>(sql: string, params: readonly SqlValue[] = []) {
      const result = await executor.query(text(sql), [...params])
      return result.rows[0] as Row | undefined
    },
    async run(sql, params = []) {
      const result = await executor.query(text(sql), [...params])
      return result.rowCount ?? 0
    },
  })

  return {
    dialect: 'postgres',
    ...on(pool),
    async transaction<T>(
      fn: (tx: Transaction) => Promise<T>,
      options: { readonly signal?: AbortSignal; readonly durable?: boolean } = {},
    ): Promise<T> {
      const client = await pool.connect()
      // A checked-out client whose session the database ends (a restart, an idle-in-transaction
      // timeout) emits 'error', which nothing else hears while it is out of the pool: unheard,
      // it would end the process. The next statement fails, and the client is destroyed.
      let broken: Error | undefined
      const onError = (error: Error) => {
        broken = error
      }
      client.on('error', onError)
      const afterCommit: (() => void)[] = []
      const store: PostgresTransaction = { client, afterCommit: (hook) => afterCommit.push(hook) }
      try {
        await client.query(
          options.durable === false ? 'BEGIN; SET LOCAL synchronous_commit TO OFF' : 'BEGIN',
        )
        let result: T
        try {
          result = await fn({ ...on(client), store })
          options.signal?.throwIfAborted()
          await client.query('COMMIT')
        } catch (error) {
          await client.query('ROLLBACK').catch((rollbackError: unknown) => {
            broken ??=
              rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError))
          })
          throw error
        }
        for (const hook of afterCommit) hook()
        return result
      } finally {
        client.off('error', onError)
        client.release(broken)
      }
    },
    close: () => pool.end(),
  }
}
