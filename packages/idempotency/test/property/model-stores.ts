/**
 * The stores the engine's model-based test runs on, one row each: how to open one on a fresh
 * table or file, how to make it fail for real, and how its claims end when their holder dies.
 * A new store (Redis) is one more row.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { ManualClock, Store, StoreTransaction } from '@ticksupply/idempotency'
import type { SqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import { createSqliteStore, openSqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import { killClaimHolders, openTemporaryPostgres } from '../support/postgres.js'

export interface ModelSubject {
  readonly store: Store<StoreTransaction>
  /**
   * Makes the store fail for real until the returned function heals it, and says which of its
   * writes fail meanwhile.
   */
  readonly fault: {
    readonly breaks: {
      readonly claim: boolean
      readonly complete: boolean
      readonly release: boolean
    }
    inject(): Promise<() => Promise<void>>
  }
  /**
   * The holder of every claim made so far dies (as its process would); resolves the store of a
   * new holder on the same records. `free`: the claims end with it (the key is simply free);
   * `takeover`: they stay until a claimant takes them over.
   */
  readonly holderDies: {
    readonly after: 'free' | 'takeover'
    run(): Promise<Store<StoreTransaction>>
  }
  close(): Promise<void>
}

export interface ModelStoreRow {
  readonly name: string
  /** How many generated runs CI gives it: a run opens a fresh store. */
  readonly runs: number
  open(clock: ManualClock): Promise<ModelSubject>
}

function openSqliteSubject(clock: ManualClock): Promise<ModelSubject> {
  const dir = mkdtempSync(join(tmpdir(), 'idempotency-model-'))
  const filename = join(dir, 'records.db')
  // A short busy budget: a write under the fault fails in 30 ms, not 5 s.
  const connections: SqliteConnection[] = [openSqliteConnection(filename, { busyTimeoutMs: 30 })]
  let store = createSqliteStore({ connection: connections[0]!, clock })
  return Promise.resolve({
    get store() {
      return store
    },
    fault: {
      // Claims read committed state, which another connection's write lock never blocks: only
      // the completion (a group commit) has to wait for it, and gives up.
      breaks: { claim: false, complete: true, release: false },
      inject() {
        const locker = new Database(filename)
        locker.exec('BEGIN IMMEDIATE')
        return Promise.resolve(() => {
          locker.exec('ROLLBACK')
          locker.close()
          return Promise.resolve()
        })
      },
    },
    holderDies: {
      after: 'free',
      run() {
        // The process's claims are its memory: a new owner of the file starts with none.
        store.close()
        const connection = openSqliteConnection(filename, { busyTimeoutMs: 30 })
        connections.push(connection)
        store = createSqliteStore({ connection, clock })
        return Promise.resolve(store)
      },
    },
    close() {
      store.close()
      for (const connection of connections) if (connection.database.open) connection.close()
      rmSync(dir, { recursive: true, force: true })
      return Promise.resolve()
    },
  })
}

async function openPostgresSubject(clock: ManualClock): Promise<ModelSubject> {
  const holder = await openTemporaryPostgres({ clock })
  const peers: Awaited<ReturnType<typeof openTemporaryPostgres>>[] = []
  let store: Store<StoreTransaction> = holder.store
  const current = () => peers.at(-1) ?? holder
  return {
    get store() {
      return store
    },
    fault: {
      breaks: { claim: true, complete: true, release: true },
      async inject() {
        const { pool, table } = current()
        await pool.query(`ALTER TABLE ${table} RENAME TO ${table}_away`)
        return async () => {
          await pool.query(`ALTER TABLE ${table}_away RENAME TO ${table}`)
        }
      },
    },
    holderDies: {
      after: 'takeover',
      async run() {
        const peer = await openTemporaryPostgres({
          clock,
          table: holder.table,
          channel: holder.channel,
        })
        peers.push(peer)
        // Ends the database session of the instance holding the claims, as its crash would.
        await killClaimHolders(peer.pool, holder.table)
        store = peer.store
        return store
      },
    },
    async close() {
      for (const peer of peers.reverse()) await peer.close()
      await holder.close()
    },
  }
}

export const MODEL_STORES: readonly ModelStoreRow[] = [
  { name: 'SQLite', runs: 40, open: openSqliteSubject },
  { name: 'PostgreSQL', runs: 20, open: openPostgresSubject },
]
