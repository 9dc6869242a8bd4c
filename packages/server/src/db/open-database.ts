import { closeSync, mkdirSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Store, StoreTransaction } from '@ticksupply/idempotency'
import { createPostgresStore } from '@ticksupply/idempotency/stores/postgres'
import { createSqliteStore, openSqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import type { DatabaseLocation } from '../config.js'
import { describeDatabase } from '../config.js'
import type { Database } from './database.js'
import { createPostgresDatabase, openPostgresPool } from './postgres-database.js'
import { createSqliteDatabase } from './sqlite-database.js'

export interface IdempotencyStoreHandle {
  readonly store: Store<StoreTransaction>
  close(): Promise<void>
}

export interface OpenedDatabase {
  readonly db: Database
  /** Where the data lives, for people: a file name, or the server without its password. */
  readonly description: string
  /**
   * The idempotency store on the same database, so that an operation's writes and its stored
   * response commit in one transaction.
   */
  openIdempotencyStore(options: {
    /** How long an instance vouches for its claims (PostgreSQL); SQLite's end with the process. */
    leaseMs: number
    onListenError?: (error: unknown) => void
  }): Promise<IdempotencyStoreHandle>
}

export function openDatabase(
  location: DatabaseLocation,
  options: {
    /**
     * PostgreSQL: how long a session may sit idle inside a transaction before the database ends
     * it (a frozen instance's locks and claims are freed within it). The server passes its lease.
     */
    readonly idleInTransactionTimeoutMs?: number
  } = {},
): OpenedDatabase {
  if (location.kind === 'sqlite') {
    if (location.filename !== ':memory:') createPrivateFile(location.filename)
    const connection = openSqliteConnection(location.filename)
    return {
      db: createSqliteDatabase(connection),
      description: describeDatabase(location),
      openIdempotencyStore: () => {
        const store = createSqliteStore({ connection })
        return Promise.resolve({
          store,
          close: () => {
            store.close()
            return Promise.resolve()
          },
        })
      },
    }
  }
  const pool = openPostgresPool(location.url, options)
  return {
    db: createPostgresDatabase(pool),
    description: describeDatabase(location),
    async openIdempotencyStore(options) {
      const store = await createPostgresStore({
        pool,
        leaseMs: options.leaseMs,
        ...(options.onListenError === undefined ? {} : { onListenError: options.onListenError }),
      })
      return { store, close: () => store.close() }
    },
  }
}

/**
 * The database file holds the link-signing secret, API-key digests and every account's data:
 * it and the directories made for it are created for the server's user only (0600, 0700).
 * SQLite gives its -wal and -shm files the database file's mode. What already exists is left as
 * the operator set it.
 */
function createPrivateFile(filename: string): void {
  mkdirSync(dirname(filename), { recursive: true, mode: 0o700 })
  // 'a' creates the file when missing and never truncates one that exists.
  closeSync(openSync(filename, 'a', 0o600))
}
