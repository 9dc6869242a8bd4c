import { statSync } from 'node:fs'
import Database from 'better-sqlite3'
import type { StoreTransaction } from '../../core/store.js'
import type { SqliteCheckpointer } from './sqlite-checkpointer.js'
import {
  BACKSTOP_AUTOCHECKPOINT_PAGES,
  SQLITE_AUTOCHECKPOINT_PAGES,
  startSqliteCheckpointer,
} from './sqlite-checkpointer.js'

/**
 * The file at the database's path is no longer the file this connection opened: it was deleted,
 * or another file was moved over it (a restore, a careless `rm`). Writes would still succeed, into
 * a file no one can open again, and be gone after a restart; so nothing more is acknowledged.
 */
export class SqliteFileMovedError extends Error {
  override readonly name = 'SqliteFileMovedError'
  /** SQLite's own extended code for a database file that moved since it was opened. */
  readonly code = 'SQLITE_READONLY_DBMOVED'
  constructor(filename: string) {
    super(
      `The SQLite database file ${filename} was deleted or replaced while open: restart the server on the file you mean to use`,
    )
  }
}

/**
 * The database's path could not be looked at (its folder's permissions changed, a disk error):
 * whether it still names the opened file is unknown, so nothing is acknowledged until it can be
 * looked at again. SQLite's own code for a failed file-status read, so that callers that sort
 * database errors by code (unavailable, not a bug) sort this one with them.
 */
export class SqliteFileUncheckableError extends Error {
  override readonly name = 'SqliteFileUncheckableError'
  readonly code = 'SQLITE_IOERR_FSTAT'
  constructor(filename: string, cause: unknown) {
    super(`The SQLite database file ${filename} cannot be looked at: ${String(cause)}`, { cause })
  }
}

export interface SqliteConnectionOptions {
  /**
   * `NORMAL` survives a crash of the process (the test that matters for SIGKILL) but may lose
   * the last commits on power loss; `FULL` fsyncs every commit.
   * @default 'NORMAL'
   */
  readonly synchronous?: 'NORMAL' | 'FULL'
  /**
   * How long a statement may wait for another process's lock (the keys CLI, a backup) before it
   * fails with `SQLITE_BUSY`. The wait never blocks the event loop: the statement is tried
   * again on a timer, and everything else the process does goes on meanwhile.
   * @default 5_000
   */
  readonly busyTimeoutMs?: number
  /**
   * Where a WAL database is checkpointed: `'background'`, from a worker thread of its own
   * (the writer's automatic checkpoint stays as a backstop, at 10,000 pages), so that no commit
   * on the event loop waits for a checkpoint's copy and fsync; `'commit'`, SQLite's default,
   * inside the commit that crosses `wal_autocheckpoint`. In-memory, temporary and non-WAL
   * databases are checkpointed as SQLite does.
   * @default 'background'
   */
  readonly checkpoint?: 'background' | 'commit'
}

/** A transaction opened by {@link SqliteConnection.transaction}; its statements run directly. */
export interface SqliteTransaction extends StoreTransaction {
  readonly database: Database.Database
}

/**
 * One better-sqlite3 connection for writes, shared by the idempotency store and the
 * application, and a second, read-only one for reads of committed state.
 *
 * better-sqlite3 is synchronous and a connection has one transaction at a time, so a
 * transaction that awaits between its statements would swallow every statement that other
 * requests run meanwhile. This object is the one lock that prevents it: writes outside a
 * transaction go through {@link write} (or {@link exclusive}), transactions through
 * {@link transaction}, and nothing interleaves. Reads go through {@link read}, on the read
 * connection: they see only committed data (never an open transaction's writes) and never wait
 * for a writer (WAL).
 *
 * SQLite's own busy handler sleeps inside the statement, which would freeze the event loop
 * while another process holds a lock; it is off (`busy_timeout = 0`), and a statement that
 * finds the database locked is tried again on a timer with backoff, up to `busyTimeoutMs`.
 *
 * In WAL mode SQLite does not notice that its file was deleted or replaced under it. Every
 * commit (a transaction, a group commit, an autocommit statement) first checks that the path
 * still names the opened file (device and inode), and reads check at most once a second; once
 * the file has moved, everything rejects with {@link SqliteFileMovedError}.
 */
export interface SqliteConnection {
  /** The write connection. Use it directly only inside {@link transaction} or {@link write}. */
  readonly database: Database.Database
  /**
   * Runs `fn` (synchronous reads) against committed state: at once on the read connection, or,
   * for a database that has none (`:memory:`), once no transaction is open. `fn` runs again,
   * from the start, if the database was locked.
   */
  read<T>(fn: (database: Database.Database) => T): Promise<T>
  /**
   * Runs `fn` on the write connection when no transaction is open (at once when none is), as
   * an autocommit statement. If the database is locked `fn` runs again later, so it must be one
   * statement (or safe to repeat). Must not be called from inside {@link transaction}.
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
   * Runs `fn` inside `BEGIN IMMEDIATE ... COMMIT`, holding the write connection until it
   * settles. Rolls back when `fn` rejects, or when `signal` has aborted by the time it resolves
   * (a deadline that passed must not commit).
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
  // A bad option fails before the file is opened, not with a handle left open.
  resolveConnectionOptions(options)
  const database = new Database(filename)
  database.pragma('journal_mode = WAL')
  database.pragma(`synchronous = ${options.synchronous ?? 'NORMAL'}`)
  database.pragma('foreign_keys = ON')
  return wrapSqliteDatabase(database, options)
}

/**
 * Wraps a database opened elsewhere (WAL mode is needed for the read connection); the caller
 * keeps every other use of it off the handle.
 */
export function wrapSqliteDatabase(
  database: Database.Database,
  options: Pick<SqliteConnectionOptions, 'busyTimeoutMs' | 'checkpoint'> = {},
): SqliteConnection {
  const { busyTimeoutMs, checkpoint } = resolveConnectionOptions(options)
  database.pragma('busy_timeout = 0')
  const reader = openReader(database)
  const identity = watchFileIdentity(database)
  const checkpointer = checkpoint === 'background' ? checkpointInBackground(database) : undefined

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

  /** Runs `attempt` until it does not find the database locked, or the budget runs out. */
  const untilUnlocked = async <T>(attempt: () => T): Promise<T> => {
    const giveUpAt = Date.now() + busyTimeoutMs
    for (let delayMs = 1; ; delayMs = Math.min(delayMs * 2, 100)) {
      try {
        return attempt()
      } catch (error) {
        if (!isBusy(error) || Date.now() >= giveUpAt) throw error
      }
      await sleep(Math.min(delayMs, Math.max(1, giveUpAt - Date.now())))
    }
  }

  /** BEGIN IMMEDIATE once the write lock is ours; the in-process lock is held on return. */
  const begin = async (): Promise<void> => {
    const giveUpAt = Date.now() + busyTimeoutMs
    for (let delayMs = 1; ; delayMs = Math.min(delayMs * 2, 100)) {
      await acquire()
      try {
        database.exec('BEGIN IMMEDIATE')
        return
      } catch (error) {
        // Give the connection back while we wait: reads and the other transactions of this
        // process need not queue behind another process's lock.
        release()
        if (!isBusy(error) || Date.now() >= giveUpAt) throw error
      }
      await sleep(Math.min(delayMs, Math.max(1, giveUpAt - Date.now())))
    }
  }

  function exclusive<T>(fn: (database: Database.Database) => T): Promise<T> {
    try {
      identity.check()
    } catch (error) {
      return Promise.reject(toError(error))
    }
    if (!locked) {
      // Synchronous statements cannot interleave with anything: run them now.
      try {
        return Promise.resolve(fn(database))
      } catch (error) {
        if (!isBusy(error)) return Promise.reject(toError(error))
      }
    }
    const giveUpAt = Date.now() + busyTimeoutMs
    const run = async (delayMs: number): Promise<T> => {
      // After this process's own open transaction, if there is one.
      await acquire()
      try {
        return fn(database)
      } catch (error) {
        if (!isBusy(error) || Date.now() >= giveUpAt) throw error
      } finally {
        release()
      }
      await sleep(Math.min(delayMs, Math.max(1, giveUpAt - Date.now())))
      return run(Math.min(delayMs * 2, 100))
    }
    return run(1)
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
    try {
      await begin()
    } catch (error) {
      for (const item of items) item.fail(error)
      return
    }
    try {
      for (const item of items) {
        item.run()
        // A statement error that ended the whole transaction (I/O, full disk) undoes the items
        // before it too: fail them all.
        if (!database.inTransaction) throw new Error('SQLite rolled back the group commit')
      }
      identity.check()
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
    read<T>(fn: (database: Database.Database) => T): Promise<T> {
      try {
        identity.checkOccasionally()
      } catch (error) {
        return Promise.reject(toError(error))
      }
      // With no transaction open, the write connection sees exactly the committed state, and
      // its page cache is warm (a second connection's is dropped after every write).
      if (!locked) {
        try {
          return Promise.resolve(fn(database))
        } catch (error) {
          if (!isBusy(error)) return Promise.reject(toError(error))
        }
      }
      if (reader !== undefined) {
        try {
          return Promise.resolve(fn(reader))
        } catch (error) {
          if (!isBusy(error)) return Promise.reject(toError(error))
          return untilUnlocked(() => fn(reader))
        }
      }
      // No read connection: the write connection, but never inside an open transaction.
      return exclusive(fn)
    },
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
    exclusive,
    async transaction<T>(
      fn: (tx: SqliteTransaction) => Promise<T>,
      options: { readonly signal?: AbortSignal } = {},
    ): Promise<T> {
      await begin()
      const afterCommit: (() => void)[] = []
      const tx: SqliteTransaction = {
        database,
        afterCommit: (hook) => afterCommit.push(hook),
      }
      try {
        let result: T
        try {
          result = await fn(tx)
          options.signal?.throwIfAborted()
          identity.check()
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
      checkpointer?.stop()
      reader?.close()
      database.close()
    },
  }
}

function resolveConnectionOptions(
  options: Pick<SqliteConnectionOptions, 'busyTimeoutMs' | 'checkpoint'>,
): { busyTimeoutMs: number; checkpoint: 'background' | 'commit' } {
  const busyTimeoutMs = options.busyTimeoutMs ?? 5_000
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new TypeError(
      `Expected \`busyTimeoutMs\` to be a non-negative integer, got ${String(busyTimeoutMs)}.`,
    )
  }
  // Checked at run time too: JavaScript callers get a TypeError, not a silent default.
  const checkpoint = (options.checkpoint ?? 'background') as string
  if (checkpoint !== 'background' && checkpoint !== 'commit') {
    throw new TypeError(
      `Expected \`checkpoint\` to be 'background' or 'commit', got ${checkpoint}.`,
    )
  }
  return { busyTimeoutMs, checkpoint }
}

function checkpointInBackground(database: Database.Database): SqliteCheckpointer | undefined {
  if (database.memory || database.name === '') return undefined
  if (database.pragma('journal_mode', { simple: true }) !== 'wal') return undefined
  database.pragma(`wal_autocheckpoint = ${String(BACKSTOP_AUTOCHECKPOINT_PAGES)}`)
  return startSqliteCheckpointer(database.name, () => {
    if (database.open)
      database.pragma(`wal_autocheckpoint = ${String(SQLITE_AUTOCHECKPOINT_PAGES)}`)
  })
}

/**
 * The read-only second connection on the same file; none for in-memory and temporary
 * databases, which another connection cannot open.
 */
function openReader(database: Database.Database): Database.Database | undefined {
  if (database.memory || database.name === '') return undefined
  const reader = new Database(database.name, { readonly: true, fileMustExist: true })
  reader.pragma('busy_timeout = 0')
  return reader
}

/** How often reads look at the file again; commits look every time. */
const READ_CHECK_INTERVAL_MS = 1_000

/**
 * Whether the database's path still names the file that was opened, by device and inode. A
 * `stat` costs a microsecond or two, once per commit (a group commit counts once). Once moved,
 * always moved: the process must not drift onto whatever file appears at the path later.
 */
function watchFileIdentity(database: Database.Database): {
  check(): void
  checkOccasionally(): void
} {
  if (database.memory || database.name === '') {
    return { check: () => undefined, checkOccasionally: () => undefined }
  }
  const filename = database.name
  const opened = statSync(filename, { bigint: true })
  let moved: SqliteFileMovedError | undefined
  let checkedAt = Date.now()
  const check = () => {
    if (moved !== undefined) throw moved
    checkedAt = Date.now()
    let now
    try {
      now = statSync(filename, { bigint: true, throwIfNoEntry: false })
    } catch (error) {
      // Not "moved": it may be looked at again once the folder is readable.
      throw new SqliteFileUncheckableError(filename, error)
    }
    if (now?.dev === opened.dev && now.ino === opened.ino) return
    moved = new SqliteFileMovedError(filename)
    throw moved
  }
  return {
    check,
    checkOccasionally() {
      if (moved !== undefined) throw moved
      if (Date.now() - checkedAt >= READ_CHECK_INTERVAL_MS) check()
    },
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY')
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function toError(value: unknown): Error {
  if (value instanceof Error) return value
  return new Error(value === undefined ? 'the write did not run' : 'the write failed', {
    cause: value,
  })
}
