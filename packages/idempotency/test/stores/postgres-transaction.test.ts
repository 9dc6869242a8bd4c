import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { describe, expect, inject, it } from 'vitest'
import type { PostgresTransaction } from '@ticksupply/idempotency/stores/postgres'
import { withPostgresTransaction } from '@ticksupply/idempotency/stores/postgres'
import { outcomeOf, request, response } from '../store-contract.js'
import { openTemporaryPostgres } from '../support/postgres.js'

const stored = response('{"id":1}')

async function withThings(
  fn: (
    subject: Awaited<ReturnType<typeof openTemporaryPostgres>> & { things: string },
  ) => Promise<void>,
): Promise<void> {
  const subject = await openTemporaryPostgres()
  const things = `${subject.table}_things`
  await subject.pool.query(
    `CREATE TABLE ${things} (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES ${things} (id) DEFERRABLE INITIALLY DEFERRED)`,
  )
  try {
    await fn({ ...subject, things })
  } finally {
    await subject.pool.query(`DROP TABLE IF EXISTS ${things}`).catch(() => undefined)
    await subject.close()
  }
}

const countRows = async (pool: pg.Pool, table: string) =>
  (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n

describe('withPostgresTransaction', () => {
  it('survives the database ending the session between two statements, and destroys the client', () =>
    withThings(async ({ pool }) => {
      const uncaught: unknown[] = []
      const record = (error: unknown) => uncaught.push(error)
      process.on('uncaughtException', record)
      try {
        const outcome = await withPostgresTransaction(pool, async (tx) => {
          const { rows } = await tx.client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
          await pool.query('SELECT pg_terminate_backend($1, 5000)', [rows[0]?.pid])
          // Idle in the transaction while the session ends: the client hears it now.
          await new Promise((resolve) => setTimeout(resolve, 300))
          await tx.client.query('SELECT 1')
        }).then(
          () => 'committed',
          () => 'failed',
        )
        expect(outcome).toBe('failed')
        expect(uncaught).toEqual([])
        const { rows } = await pool.query<{ one: number }>('SELECT 1 AS one')
        expect(rows).toEqual([{ one: 1 }])
      } finally {
        process.off('uncaughtException', record)
      }
    }))

  it('commits the operation and its completion together, then runs the afterCommit hooks', () =>
    withThings(async ({ pool, store, things }) => {
      const claim = request({ scope: 'acct' })
      await store.claim(claim)
      const seen: string[] = []
      const result = await withPostgresTransaction(pool, async (tx: PostgresTransaction) => {
        await tx.client.query(`INSERT INTO ${things} (id) VALUES (1)`)
        expect(await store.complete(claim, stored, tx)).toBe(true)
        tx.afterCommit(() => seen.push('after commit'))
        seen.push('operation done')
        return 'the result'
      })
      expect(result).toBe('the result')
      expect(seen).toEqual(['operation done', 'after commit'])
      expect(await countRows(pool, things)).toBe(1)
      expect(outcomeOf(await store.claim({ ...claim, token: randomUUID() }))).toBe('replay')
    }))

  it('rolls both back when the operation fails after completing, and runs no hook', () =>
    withThings(async ({ pool, store, things }) => {
      const claim = request({ scope: 'acct' })
      await store.claim(claim)
      let hooks = 0
      await expect(
        withPostgresTransaction(pool, async (tx) => {
          await tx.client.query(`INSERT INTO ${things} (id) VALUES (1)`)
          await store.complete(claim, stored, tx)
          tx.afterCommit(() => hooks++)
          throw new Error('the operation failed after its completion was written')
        }),
      ).rejects.toThrow('the operation failed')
      expect(hooks).toBe(0)
      expect(await countRows(pool, things)).toBe(0)
      // Still held by the claimant, which can give it back.
      expect(outcomeOf(await store.claim({ ...claim, token: randomUUID() }))).toBe('in_progress')
      expect(await store.release(claim)).toBe(true)
    }))

  it('does not commit when the signal aborted during the operation', () =>
    withThings(async ({ pool, things }) => {
      const controller = new AbortController()
      await expect(
        withPostgresTransaction(
          pool,
          async (tx) => {
            await tx.client.query(`INSERT INTO ${things} (id) VALUES (1)`)
            controller.abort(new Error('deadline'))
          },
          { signal: controller.signal },
        ),
      ).rejects.toThrow('deadline')
      expect(await countRows(pool, things)).toBe(0)
    }))

  it('rejects and runs no hook when COMMIT itself fails (a deferred constraint)', () =>
    withThings(async ({ pool, things }) => {
      let hooks = 0
      await expect(
        withPostgresTransaction(pool, async (tx) => {
          // Checked only at COMMIT: no row 99 to refer to.
          await tx.client.query(`INSERT INTO ${things} (id, parent) VALUES (1, 99)`)
          tx.afterCommit(() => hooks++)
        }),
      ).rejects.toThrow(/foreign key/)
      expect(hooks).toBe(0)
      expect(await countRows(pool, things)).toBe(0)
    }))

  it('gives its client back to the pool whatever the outcome', async () => {
    // One client in all: a transaction that kept it would leave the next one without.
    const pool = new pg.Pool({
      connectionString: inject('postgresUrl'),
      max: 1,
      connectionTimeoutMillis: 5_000,
    })
    try {
      for (let i = 0; i < 6; i++) {
        const outcome = withPostgresTransaction(pool, async (tx) => {
          await tx.client.query('SELECT 1')
          if (i % 2 === 1) throw new Error('rolled back')
          return i
        })
        if (i % 2 === 1) await expect(outcome).rejects.toThrow('rolled back')
        else expect(await outcome).toBe(i)
      }
      expect(pool.totalCount).toBe(1)
      expect(pool.idleCount).toBe(1)
    } finally {
      await pool.end()
    }
  })
})
