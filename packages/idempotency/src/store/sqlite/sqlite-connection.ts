import Database from 'better-sqlite3'
import type { StoreTransaction } from '../../core/store.js'

export interface SqliteConnectionOptions {
  /**
   * `NORMAL` survives a crash of the process (the test that matters for SIGKILL) but may lose
   * the last commits on power loss; `FULL` fsyncs every commit.
   * @default 'NORMAL'
   */
  readonly synchronous?: 'NORMAL' | 'FULL'
  /**
   * How long a statement waits for another process's write lock before failing.
   * @default 5_000
   */
  readonly busyTimeoutMs?: number
}

/** A transaction opened by {@link SqliteConnection.transaction}; its statements run directly. */
export interface SqliteTransaction extends StoreTransaction {
  readonly database: Database.Database
}

/**
 * One better-sqlite3 connection shared by the idempotency store and the application.
 *
 * better-sqlite3 is synchronous and has one connection, so a transaction that awaits between
 * its statements would swallow every statement that other requests run meanwhile. This class
 * is the one lock that prevents it: statements outside a transaction go through
 * {@link exclusive}, transactions through {@link transaction}, and nothing interleaves.
 */
export interface SqliteConnection {
  readonly database: Database.Database
  /**
   * Runs `fn` (synchronous statements) when no transaction is open; at once when none is.
   * Must not be called from inside {@link transaction}'s callback: that would wait forever.
   */
  exclusive<T>(fn: (database: Database.Database) => T): Promise<T>
  /**
   * Runs `fn` inside `BEGIN IMMEDIATE ... COMMIT`, holding the connection until it settles.
   * Rolls back when `fn` rejects, or when `signal` has aborted by the time it resolves (a
   * deadline that passed must not commit).
   */
  transaction<T>(
    fn: (tx: SqliteTransaction) => Promise<T>,
    options?: { readonly signal?: AbortSignal },
  ): Promise<T>
  close(): void
}

export function openSqliteConnection(
  filename: string,
  options: SqliteConnectionOptions = {},
): SqliteConnection {
  const database = new Database(filename)
  database.pragma('journal_mode = WAL')
  database.pragma(`synchronous = ${options.synchronous ?? 'NORMAL'}`)
  database.pragma(`busy_timeout = ${String(options.busyTimeoutMs ?? 5_000)}`)
  database.pragma('foreign_keys = ON')
  return wrapSqliteDatabase(database)
}

/** Wraps a database opened elsewhere; the caller keeps every other use of it off the handle. */
export function wrapSqliteDatabase(database: Database.Database): SqliteConnection {
  let locked = false
  const waiting: (() => void)[] = []

  const acquire = (): Promise<void> => {
    if (!locked) {
      locked = true
      return Promise.resolve()
    }
    return new Promise((resolve) => waiting.push(resolve))
  }
  const release = () => {
    const next = waiting.shift()
    if (next === undefined) locked = false
    else next()
  }

  return {
    database,
    exclusive<T>(fn: (database: Database.Database) => T): Promise<T> {
      if (!locked) {
        // Synchronous statements cannot interleave with anything: run them now (the executor
        // runs synchronously, and turns a throw into a rejection).
        return new Promise<T>((resolve) => {
          resolve(fn(database))
        })
      }
      return acquire().then(() => {
        try {
          return fn(database)
        } finally {
          release()
        }
      })
    },
    async transaction<T>(
      fn: (tx: SqliteTransaction) => Promise<T>,
      options: { readonly signal?: AbortSignal } = {},
    ): Promise<T> {
      await acquire()
      const afterCommit: (() => void)[] = []
      const tx: SqliteTransaction = {
        database,
        afterCommit: (hook) => afterCommit.push(hook),
      }
      try {
        database.exec('BEGIN IMMEDIATE')
        let result: T
        try {
          result = await fn(tx)
          options.signal?.throwIfAborted()
          database.exec('COMMIT')
        } catch (error) {
          if (database.inTransaction) database.exec('ROLLBACK')
          throw error
        }
        for (const hook of afterCommit) hook()
        return result
      } finally {
        release()
      }
    },
    close() {
      database.close()
    },
  }
}
