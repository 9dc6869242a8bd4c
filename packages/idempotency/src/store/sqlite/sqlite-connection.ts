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
   * Runs `fn` (synchronous writes) in a group commit: every write queued in the same turn of
   * the event loop runs in one transaction, and each promise settles once that transaction has
   * committed (or rejects if it did not). One commit per batch instead of one per statement is
   * most of a write's cost in SQLite. A `fn` that throws rejects alone; the others still commit.
   * Must not be called from inside {@link transaction}'s callback.
   */
  write<T>(fn: (database: Database.Database) => T): Promise<T>
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

  interface Queued {
    run: () => void
    settle: () => void
    fail: (error: unknown) => void
  }
  let batch: Queued[] | undefined

  const flush = async () => {
    const items = batch ?? []
    batch = undefined
    await acquire()
    try {
      database.exec('BEGIN IMMEDIATE')
      for (const item of items) {
        item.run()
        // A statement error that ended the whole transaction (I/O, full disk) undoes the items
        // before it too: fail them all.
        if (!database.inTransaction) throw new Error('SQLite rolled back the group commit')
      }
      database.exec('COMMIT')
      for (const item of items) item.settle()
    } catch (error) {
      if (database.inTransaction) database.exec('ROLLBACK')
      for (const item of items) item.fail(error)
    } finally {
      release()
    }
  }

  return {
    database,
    write<T>(fn: (database: Database.Database) => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined
        const item: Queued = {
          run: () => {
            try {
              outcome = { ok: true, value: fn(database) }
            } catch (error) {
              outcome = { ok: false, error }
            }
          },
          settle: () => {
            if (outcome?.ok === true) resolve(outcome.value)
            else reject(toError(outcome?.error))
          },
          fail: (error) => {
            reject(toError(error))
          },
        }
        if (batch === undefined) {
          batch = []
          setImmediate(() => void flush())
        }
        batch.push(item)
      })
    },
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

function toError(value: unknown): Error {
  if (value instanceof Error) return value
  return new Error(value === undefined ? 'the write did not run' : 'the write failed', {
    cause: value,
  })
}
