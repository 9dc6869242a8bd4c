/**
 * The stores the engine's model-based test runs on, one row each: how to open one on a fresh
 * table or file, how to make it fail for real, and how its claims end when their holder dies.
 * A new store is one more row.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { inject } from 'vitest'
import type { ManualClock, Store, StoreTransaction } from '@ticksupply/idempotency'
import type { SqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import { createSqliteStore, openSqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import { killClaimHolders, openTemporaryPostgres } from '../support/postgres.js'
import { connectRedis, openTemporaryRedis } from '../support/redis.js'

export interface ModelSubject {
  readonly store: Store<StoreTransaction>
  /**
   * For stores whose claims are leases: how long a claim holds unless renewed. The engine
   * renews every third of it in real time; while the test's clock jumps, nothing does.
   */
  readonly claimsLapseAfterMs?: number
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
   * new holder on the same records, and how far the clock was moved for it (a lease store's
   * claims end when their lease lapses). `free`: the claims end with it (the key is simply
   * free); `takeover`: they stay until a claimant takes them over.
   */
  readonly holderDies: {
    readonly after: 'free' | 'takeover'
    run(): Promise<{ readonly store: Store<StoreTransaction>; readonly advancedMs: number }>
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
        return Promise.resolve({ store, advancedMs: 0 })
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
        return { store, advancedMs: 0 }
      },
    },
    async close() {
      for (const peer of peers.reverse()) await peer.close()
      await holder.close()
    },
  }
}

/** The engine's lease for stores whose claims are leases (Redis); renewals every third. */
export const MODEL_LEASE_MS = 30_000

async function openRedisSubject(clock: ManualClock): Promise<ModelSubject> {
  // The store's client logs in as a user of its own, whose rights the fault takes away.
  const admin = await connectRedis()
  const user = `model_${randomUUID().slice(0, 8)}`
  await admin.sendCommand(['ACL', 'SETUSER', user, 'on', '>secret', '~*', '&*', '+@all'])
  const url = new URL(inject('redisUrl'))
  url.username = user
  url.password = 'secret'
  const first = await openTemporaryRedis({ url: url.toString(), clock, commandTimeoutMs: 500 })
  const holders = [first]
  let store: Store<StoreTransaction> = first.store
  return {
    get store() {
      return store
    },
    claimsLapseAfterMs: MODEL_LEASE_MS,
    fault: {
      breaks: { claim: true, complete: true, release: true },
      async inject() {
        await admin.sendCommand(['ACL', 'SETUSER', user, '-@all'])
        return async () => {
          await admin.sendCommand(['ACL', 'SETUSER', user, '+@all'])
        }
      },
    },
    holderDies: {
      after: 'takeover',
      async run() {
        // A new process on the same records; the dead one renews nothing, so its leases lapse.
        const next = await openTemporaryRedis({
          url: url.toString(),
          clock,
          commandTimeoutMs: 500,
          prefix: first.prefix,
        })
        holders.push(next)
        clock.advance(MODEL_LEASE_MS + 1)
        store = next.store
        return { store, advancedMs: MODEL_LEASE_MS + 1 }
      },
    },
    async close() {
      for (const opened of holders.reverse()) await opened.close()
      await admin.sendCommand(['ACL', 'DELUSER', user])
      admin.destroy()
    },
  }
}

export const MODEL_STORES: readonly ModelStoreRow[] = [
  { name: 'SQLite', runs: 40, open: openSqliteSubject },
  { name: 'PostgreSQL', runs: 20, open: openPostgresSubject },
  { name: 'Redis', runs: 20, open: openRedisSubject },
]
