import type { Statement } from 'better-sqlite3'
import type { SqliteConnection, SqliteTransaction } from '@ticksupply/idempotency/stores/sqlite'
import type { Database, Queryable, SqlValue, Transaction } from './database.js'

/**
 * The application's queries on the connection the idempotency store shares, so that an
 * operation's writes and its stored response commit in one SQLite transaction.
 */
export function createSqliteDatabase(connection: SqliteConnection): Database {
  const statements = new Map<string, Statement<SqlValue[]>>()
  const prepare = (sql: string): Statement<SqlValue[]> => {
    let statement = statements.get(sql)
    if (statement === undefined) {
      statement = connection.database.prepare<SqlValue[]>(sql)
      statements.set(sql, statement)
    }
    return statement
  }

  // Outside a transaction, reads go to the read connection (committed state, never blocked by
  // a writer) and each write is one statement that waits for the write connection; inside a
  // transaction, statements run directly on the connection it holds.
  const readers = new WeakMap<object, Map<string, Statement<SqlValue[]>>>()
  const prepareOn = (handle: typeof connection.database, sql: string): Statement<SqlValue[]> => {
    if (handle === connection.database) return prepare(sql)
    let cached = readers.get(handle)
    if (cached === undefined)
      readers.set(handle, (cached = new Map<string, Statement<SqlValue[]>>()))
    let statement = cached.get(sql)
    if (statement === undefined) {
      statement = handle.prepare<SqlValue[]>(sql)
      cached.set(sql, statement)
    }
    return statement
  }
  const outside: Queryable = {
    all: <Row>(sql: string, params: readonly SqlValue[] = []) =>
      connection.read((handle) => prepareOn(handle, sql).all(...params) as Row[]),
    get: <Row>(sql: string, params: readonly SqlValue[] = []) =>
      connection.read((handle) => prepareOn(handle, sql).get(...params) as Row | undefined),
    run: (sql, params = []) => connection.exclusive(() => prepare(sql).run(...params).changes),
  }

  const inside = (tx: SqliteTransaction): Transaction => ({
    store: tx,
    all: <Row>(sql: string, params: readonly SqlValue[] = []) =>
      Promise.resolve(prepare(sql).all(...params) as Row[]),
    get: <Row>(sql: string, params: readonly SqlValue[] = []) =>
      Promise.resolve(prepare(sql).get(...params) as Row | undefined),
    run: (sql, params = []) => Promise.resolve(prepare(sql).run(...params).changes),
  })

  return {
    dialect: 'sqlite',
    ...outside,
    transaction: (fn, options) => connection.transaction((tx) => fn(inside(tx)), options),
    close: () => {
      connection.close()
      return Promise.resolve()
    },
  }
}
