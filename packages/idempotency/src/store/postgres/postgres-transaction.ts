import type { Pool } from 'pg'
import type { PostgresTransaction } from './postgres-store.js'

/**
 * Runs `fn` inside `BEGIN ... COMMIT` on one client of `pool`, as SQLite's
 * `connection.transaction` does on its connection: the operation's writes and its completion
 * (`claim.complete(response, tx)`) commit together or not at all.
 *
 * - Rolls back when `fn` rejects, or when `signal` has aborted by the time it resolves (a
 *   deadline that passed must not commit), and rejects with that reason.
 * - Runs the `afterCommit` hooks (the store's: its cache learns the completion, waiters wake)
 *   after COMMIT succeeded, never after a ROLLBACK or a failed COMMIT.
 * - Gives the client back to the pool in every case; a client whose connection broke (its
 *   ROLLBACK failed, or the database ended its session) is destroyed rather than reused.
 */
export async function withPostgresTransaction<T>(
  pool: Pool,
  fn: (tx: PostgresTransaction) => Promise<T>,
  options: { readonly signal?: AbortSignal } = {},
): Promise<T> {
  const client = await pool.connect()
  let broken: Error | undefined
  // A checked-out client whose session the database ends (a restart, an idle-in-transaction
  // timeout) emits 'error', which nothing else hears while it is out of the pool: unheard, it
  // would end the process. The transaction's next statement fails, and the client is destroyed.
  const onError = (error: Error) => {
    broken = error
  }
  client.on('error', onError)
  try {
    const afterCommit: (() => void)[] = []
    const tx: PostgresTransaction = {
      client,
      afterCommit: (hook) => afterCommit.push(hook),
    }
    let result: T
    try {
      await client.query('BEGIN')
      result = await fn(tx)
      options.signal?.throwIfAborted()
      await client.query('COMMIT')
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError))
      })
      throw error
    }
    for (const hook of afterCommit) hook()
    return result
  } finally {
    client.off('error', onError)
    client.release(broken)
  }
}
