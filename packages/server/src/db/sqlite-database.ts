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

  // Outside a transaction every statement waits for the connection; inside one it already
  // holds it and runs directly.
  const outside: Queryable = {
    all: <Row>(sql: string, params: readonly SqlValue[] = []) =>
      connection.exclusive(() => prepare(sql).all(...params) as Row[]),
    get: <Row>(sql: string, params: readonly SqlValue[] = []) =>
      connection.exclusive(() => prepare(sql).get(...params) as Row | undefined),
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
