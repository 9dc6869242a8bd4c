export type { PostgresStore, PostgresStoreOptions, PostgresTransaction } from './postgres-store.js'
export { createPostgresStore } from './postgres-store.js'
export { withPostgresTransaction } from './postgres-transaction.js'
