export type {
  SqliteConnection,
  SqliteConnectionOptions,
  SqliteTransaction,
} from './sqlite-connection.js'
export {
  SqliteFileMovedError,
  SqliteFileUncheckableError,
  openSqliteConnection,
  wrapSqliteDatabase,
} from './sqlite-connection.js'
export { sqliteKeyHash } from './sqlite-key-hash.js'
export { SqliteStoreOwnedError } from './sqlite-ownership.js'
export type { SqliteStore, SqliteStoreOptions } from './sqlite-store.js'
export { createSqliteStore } from './sqlite-store.js'
