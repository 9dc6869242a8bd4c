import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Clock } from '@ticksupply/idempotency'
import type { SqliteConnection, SqliteStore } from '@ticksupply/idempotency/stores/sqlite'
import { createSqliteStore, openSqliteConnection } from '@ticksupply/idempotency/stores/sqlite'

/** A SQLite file in a fresh temporary directory, with the store on it. */
export function openTemporarySqlite(clock?: Clock): {
  connection: SqliteConnection
  store: SqliteStore
  filename: string
  close: () => Promise<void>
} {
  const dir = mkdtempSync(join(tmpdir(), 'idempotency-sqlite-'))
  const filename = join(dir, 'records.db')
  const connection = openSqliteConnection(filename)
  const store = createSqliteStore(clock === undefined ? { connection } : { connection, clock })
  return {
    connection,
    store,
    filename,
    close: () => {
      store.close()
      if (connection.database.open) connection.close()
      rmSync(dir, { recursive: true, force: true })
      return Promise.resolve()
    },
  }
}
