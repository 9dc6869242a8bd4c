import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createSqliteStore, openSqliteConnection } from '@ticksupply/idempotency/stores/sqlite'
import { request, response, runStoreContract } from '../store-contract.js'
import { openTemporarySqlite } from '../support/sqlite.js'

runStoreContract('SQLite', (clock) => Promise.resolve({ ...openTemporarySqlite(clock), clock }))

const stored = response('{"id":1}')
const claimRequest = () => request({ scope: 'acct' })

describe('SQLite store, atomic with the operation', () => {
  it('commits the operation and its completion together', async () => {
    const { connection, store, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      const claim = claimRequest()
      await store.claim(claim)
      await connection.transaction(async (tx) => {
        tx.database.prepare('INSERT INTO things (id) VALUES (1)').run()
        expect(await store.complete(claim, stored, tx)).toBe(true)
      })
      expect(connection.database.prepare('SELECT COUNT(*) AS n FROM things').get()).toEqual({
        n: 1,
      })
      expect((await store.claim({ ...claim, token: randomUUID() })).kind).toBe('replay')
    } finally {
      await close()
    }
  })

  it('rolls back both when the operation fails after completing', async () => {
    const { connection, store, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      const claim = claimRequest()
      await store.claim(claim)
      let woken = 0
      const unsubscribe = store.onSettled?.(claim.scope, claim.key, () => {
        woken++
      })
      await expect(
        connection.transaction(async (tx) => {
          tx.database.prepare('INSERT INTO things (id) VALUES (1)').run()
          await store.complete(claim, stored, tx)
          throw new Error('the operation failed after its completion was written')
        }),
      ).rejects.toThrow('the operation failed')
      unsubscribe?.()
      expect(connection.database.prepare('SELECT COUNT(*) AS n FROM things').get()).toEqual({
        n: 0,
      })
      expect(woken).toBe(0)
      // Still ours and in progress: the claimant can release it.
      expect(await store.claim({ ...claim, token: randomUUID() })).toEqual({ kind: 'in_progress' })
      expect(await store.release(claim)).toBe(true)
    } finally {
      await close()
    }
  })

  it('does not commit when the signal aborted during the operation', async () => {
    const { connection, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      const controller = new AbortController()
      await expect(
        connection.transaction(
          async (tx) => {
            tx.database.prepare('INSERT INTO things (id) VALUES (1)').run()
            controller.abort(new Error('deadline'))
            await Promise.resolve()
          },
          { signal: controller.signal },
        ),
      ).rejects.toThrow('deadline')
      expect(connection.database.prepare('SELECT COUNT(*) AS n FROM things').get()).toEqual({
        n: 0,
      })
    } finally {
      await close()
    }
  })

  it('keeps other statements out of an open transaction that awaits', async () => {
    const { connection, store, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      const other = claimRequest()
      let release!: () => void
      const gate = new Promise<void>((resolve) => (release = resolve))
      const transaction = connection.transaction(async (tx) => {
        tx.database.prepare('INSERT INTO things (id) VALUES (1)').run()
        await gate
        throw new Error('roll back')
      })
      // This claim is issued while the transaction is open; it must not become part of it.
      const claimed = store.claim(other)
      release()
      await expect(transaction).rejects.toThrow('roll back')
      expect((await claimed).kind).toBe('claimed')
      expect(await store.claim({ ...other, token: randomUUID() })).toEqual({ kind: 'in_progress' })
    } finally {
      await close()
    }
  })
})

describe('SQLite store, two connections on one file (two processes)', () => {
  it('gives the key to exactly one of them, and the other replays its completion', async () => {
    const first = openTemporarySqlite()
    const secondConnection = openSqliteConnection(first.filename)
    try {
      const second = createSqliteStore({ connection: secondConnection, cacheSize: 0 })
      const base = claimRequest()
      const tokens = [randomUUID(), randomUUID()] as const
      const outcomes = await Promise.all([
        first.store.claim({ ...base, token: tokens[0] }),
        second.claim({ ...base, token: tokens[1] }),
      ])
      expect(outcomes.map((outcome) => outcome.kind).sort()).toEqual(['claimed', 'in_progress'])
      const winnerIsFirst = outcomes[0].kind === 'claimed'
      const [winner, loser] = winnerIsFirst ? [first.store, second] : [second, first.store]
      const winnerToken = winnerIsFirst ? tokens[0] : tokens[1]
      expect(await winner.complete({ ...base, token: winnerToken }, stored)).toBe(true)
      const replay = await loser.claim({ ...base, token: randomUUID() })
      expect(replay.kind === 'replay' && Buffer.from(replay.response.body).toString()).toBe(
        '{"id":1}',
      )
    } finally {
      secondConnection.close()
      await first.close()
    }
  })
})

describe('SQLite group commit', () => {
  it('commits the writes of one turn together; one that throws fails alone', async () => {
    const { connection, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      const insert = (id: number) =>
        connection.write((db) => db.prepare('INSERT INTO things (id) VALUES (?)').run(id).changes)
      const outcomes = await Promise.allSettled([
        insert(1),
        insert(2),
        // The primary key refuses this one; the statement fails, the transaction goes on.
        insert(1),
        connection.write(() => {
          throw new Error('this write fails in JavaScript')
        }),
        insert(3),
      ])
      expect(outcomes.map((outcome) => outcome.status)).toEqual([
        'fulfilled',
        'fulfilled',
        'rejected',
        'rejected',
        'fulfilled',
      ])
      expect(connection.database.prepare('SELECT id FROM things ORDER BY id').all()).toEqual([
        { id: 1 },
        { id: 2 },
        { id: 3 },
      ])
    } finally {
      await close()
    }
  })

  it('waits for an open transaction, and never writes into it', async () => {
    const { connection, close } = openTemporarySqlite()
    try {
      connection.database.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)')
      let release!: () => void
      const gate = new Promise<void>((resolve) => (release = resolve))
      const transaction = connection.transaction(async () => {
        await gate
        throw new Error('roll back')
      })
      const written = connection.write((db) =>
        db.prepare('INSERT INTO things (id) VALUES (7)').run(),
      )
      await new Promise((resolve) => setImmediate(resolve))
      release()
      await expect(transaction).rejects.toThrow('roll back')
      await written
      expect(connection.database.prepare('SELECT id FROM things').all()).toEqual([{ id: 7 }])
    } finally {
      await close()
    }
  })
})
