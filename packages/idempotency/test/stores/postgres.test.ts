import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import type { PostgresTransaction } from '@ticksupply/idempotency/stores/postgres'
import { request, response } from '../store-contract.js'
import { killClaimHolders, openTemporaryPostgres } from '../support/postgres.js'

const stored = response('{"id":1}')
const claimRequest = () => request({ scope: 'acct' })

describe('PostgreSQL store, atomic with the operation', () => {
  it('commits the completion with the operation, and rolls both back together', async () => {
    const { pool, store, table, close } = await openTemporaryPostgres()
    try {
      await pool.query(`CREATE TABLE ${table}_things (id INTEGER PRIMARY KEY)`)
      for (const outcome of ['commit', 'rollback'] as const) {
        const claim = claimRequest()
        await store.claim(claim)
        const client = await pool.connect()
        try {
          await client.query('BEGIN')
          const afterCommit: (() => void)[] = []
          const tx: PostgresTransaction = { client, afterCommit: (fn) => afterCommit.push(fn) }
          await client.query(`INSERT INTO ${table}_things (id) VALUES ($1)`, [
            outcome === 'commit' ? 1 : 2,
          ])
          expect(await store.complete(claim, stored, tx)).toBe(true)
          await client.query(outcome === 'commit' ? 'COMMIT' : 'ROLLBACK')
          if (outcome === 'commit') for (const fn of afterCommit) fn()
        } finally {
          client.release()
        }
        const again = await store.claim({ ...claim, token: randomUUID() })
        if (outcome === 'rollback') await store.release(claim)
        expect(`${outcome}: ${again.kind}`).toBe(
          outcome === 'commit' ? 'commit: replay' : 'rollback: in_progress',
        )
      }
      const things = await pool.query<{ id: number }>(`SELECT id FROM ${table}_things ORDER BY id`)
      expect(things.rows).toEqual([{ id: 1 }])
    } finally {
      await pool.query(`DROP TABLE IF EXISTS ${table}_things`).catch(() => undefined)
      await close()
    }
  })
})

describe('PostgreSQL store, claims that do not wait for the disk (durableClaims: false)', () => {
  it("keeps the claim's commit setting inside its own statement, off the application's connections", async () => {
    // A setting of the pool's own that no default has: any claim that changed a connection's
    // session would show through it.
    const size = 3
    const { pool, store, close } = await openTemporaryPostgres({
      pool: { max: size, options: '-c synchronous_commit=local' },
      durableClaims: false,
    })
    try {
      const claims = Array.from({ length: 40 }, () => claimRequest())
      const outcomes = await Promise.all(claims.map((claim) => store.claim(claim)))
      expect(outcomes.filter((outcome) => outcome.kind === 'claimed')).toHaveLength(40)
      expect(await Promise.all(claims.map((claim) => store.complete(claim, stored)))).toEqual(
        claims.map(() => true),
      )
      const clients = await Promise.all(Array.from({ length: size }, () => pool.connect()))
      try {
        const settings = await Promise.all(
          clients.map(async (client) => {
            const result = await client.query<{ synchronous_commit: string }>(
              'SHOW synchronous_commit',
            )
            return result.rows[0]?.synchronous_commit
          }),
        )
        expect(settings).toEqual(clients.map(() => 'local'))
      } finally {
        for (const client of clients) client.release()
      }
    } finally {
      await close()
    }
  })
})

describe('PostgreSQL store, table statistics', () => {
  it('analyzes a new table itself once its claims have filled it, without autovacuum', async () => {
    const { pool, store, table, close } = await openTemporaryPostgres()
    try {
      // Autovacuum off for this table: whatever analyzes it now is the store.
      await pool.query(`ALTER TABLE ${table} SET (autovacuum_enabled = false)`)
      const rowsKnown = async () => {
        const { rows } = await pool.query<{ reltuples: number }>(
          `SELECT reltuples FROM pg_class WHERE oid = $1::regclass`,
          [table],
        )
        return Number(rows[0]?.reltuples)
      }
      expect(await rowsKnown()).toBeLessThan(1)
      const claims = Array.from({ length: 600 }, () => claimRequest())
      const outcomes = await Promise.all(claims.map((claim) => store.claim(claim)))
      expect(outcomes.filter((outcome) => outcome.kind === 'claimed')).toHaveLength(600)
      const deadline = Date.now() + 5_000
      while ((await rowsKnown()) < 500 && Date.now() < deadline) await sleep(50)
      expect(await rowsKnown()).toBeGreaterThanOrEqual(500)
      for (const claim of claims) await store.release(claim)
    } finally {
      await close()
    }
  })
})

describe('PostgreSQL store, when a statement of a claim batch fails', () => {
  it('grants the keys the batch inserted even when the look-up of its other keys fails', async () => {
    const other = await openTemporaryPostgres()
    // One connection, and a short wait for it: an application transaction that takes it between
    // the claim statement and the look-up fails the look-up.
    const one = await openTemporaryPostgres({
      table: other.table,
      channel: other.channel,
      pool: { max: 1, connectionTimeoutMillis: 200 },
    })
    try {
      const completed = claimRequest()
      await other.store.claim(completed)
      await other.store.complete(completed, stored)
      const fresh = claimRequest()
      const outcomes = Promise.allSettled([
        one.store.claim(fresh),
        one.store.claim({ ...completed, token: randomUUID() }),
      ])
      // Queued behind the claim statement: it gets the connection before the look-up does.
      const application = new Promise<void>((resolve, reject) => {
        setImmediate(() => {
          one.pool
            .connect()
            .then(async (client) => {
              await sleep(600)
              client.release()
            })
            .then(resolve, reject)
        })
      })
      const [onFresh, onCompleted] = await outcomes
      await application
      expect(onFresh.status === 'fulfilled' && onFresh.value.kind).toBe('claimed')
      expect(onCompleted.status).toBe('rejected')
      // The granted claim is the request's to complete: nothing of it is left behind.
      expect(await one.store.complete(fresh, stored)).toBe(true)
      const replay = await other.store.claim({ ...fresh, token: randomUUID() })
      expect(replay.kind).toBe('replay')
      expect(one.store.inProgress).toBe(0)
    } finally {
      await one.close()
      await other.close()
    }
  })

  it('gives back the keys of a claim statement whose outcome its caller never learned', async () => {
    // A client-side timeout: the statement goes on in the database after its caller gave up.
    const a = await openTemporaryPostgres({ leaseMs: 3_000, pool: { query_timeout: 300 } })
    const b = await openTemporaryPostgres({ table: a.table, channel: a.channel })
    const blocker = await b.pool.connect()
    try {
      const contested = claimRequest()
      const fresh = claimRequest()
      // Another session's uncommitted claim of one key holds the whole statement up.
      await blocker.query('BEGIN')
      await blocker.query(
        `INSERT INTO ${a.table} (scope, key, fingerprint, state, token, lease_expires_at, expires_at, created_at)
         VALUES ($1, $2, $3, 'in_progress', $4, 9000000000000000, 9000000000000000, 0)`,
        [contested.scope, contested.key, contested.fingerprint, randomUUID()],
      )
      const outcomes = await Promise.allSettled([a.store.claim(fresh), a.store.claim(contested)])
      expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected'])
      await blocker.query('ROLLBACK')
      // The statement commits now, for requests that answered 503 and never run: a retry on
      // another instance must get the key within a lease.
      const deadline = Date.now() + 5_000
      let retry = await b.store.claim({ ...fresh, token: randomUUID() })
      while (retry.kind === 'in_progress' && Date.now() < deadline) {
        await sleep(100)
        retry = await b.store.claim({ ...fresh, token: randomUUID() })
      }
      expect(retry.kind).toBe('claimed')
      const again = await b.store.claim({ ...contested, token: randomUUID() })
      expect(again.kind).toBe('claimed')
    } finally {
      blocker.release()
      await b.close()
      await a.close()
    }
  })

  it('answers every body sent under one key in one turn, however many, while another instance holds it', async () => {
    const a = await openTemporaryPostgres()
    const b = await openTemporaryPostgres({ table: a.table, channel: a.channel })
    try {
      const held = claimRequest()
      expect((await a.store.claim(held)).kind).toBe('claimed')
      const bodies = Array.from({ length: 12 }, (_, index) =>
        index === 7 ? held.fingerprint : index.toString(16).repeat(64),
      )
      const outcomes = await Promise.all(
        bodies.map((fingerprint) => b.store.claim({ ...held, fingerprint, token: randomUUID() })),
      )
      expect(outcomes.map((outcome) => outcome.kind)).toEqual(
        bodies.map((_, index) => (index === 7 ? 'in_progress' : 'mismatch')),
      )
    } finally {
      await b.close()
      await a.close()
    }
  })
})

describe('PostgreSQL store, its replay cache after a refusal', () => {
  it('caches the record a mismatch read on another instance: no round trip for the key after it', async () => {
    const a = await openTemporaryPostgres()
    const b = await openTemporaryPostgres({ table: a.table, channel: a.channel })
    try {
      const claim = claimRequest()
      expect((await a.store.claim(claim)).kind).toBe('claimed')
      expect(await a.store.complete(claim, stored)).toBe(true)
      expect(b.store.cache().entries).toBe(0)
      const changedBody = { ...claim, fingerprint: 'e'.repeat(64) }
      expect((await b.store.claim({ ...changedBody, token: randomUUID() })).kind).toBe('mismatch')
      expect(b.store.cache()).toMatchObject({ entries: 1, hits: 0 })
      expect((await b.store.claim({ ...changedBody, token: randomUUID() })).kind).toBe('mismatch')
      const replay = await b.store.claim({ ...claim, token: randomUUID() })
      expect(replay.kind === 'replay' && Buffer.from(replay.response.body).toString()).toBe(
        '{"id":1}',
      )
      expect(b.store.cache()).toMatchObject({ entries: 1, hits: 2 })
    } finally {
      await b.close()
      await a.close()
    }
  })
})

describe('PostgreSQL store across instances', () => {
  it('wakes a duplicate waiting on another instance through LISTEN/NOTIFY, not at its next poll', async () => {
    const a = await openTemporaryPostgres()
    const b = await openTemporaryPostgres({ table: a.table, channel: a.channel })
    try {
      expect(b.store.listening).toBe(true)
      const engineA = createIdempotencyEngine({ store: a.store })
      // A 20 s poll: only the notification can end this wait in time.
      const engineB = createIdempotencyEngine({
        store: b.store,
        waitMs: 30_000,
        initialPollMs: 20_000,
      })
      const request = {
        scope: 'acct',
        key: randomUUID(),
        method: 'POST',
        pathWithQuery: '/v1/things',
        body: Buffer.from('{}'),
      }
      const original = await engineA.begin(request)
      if (original.kind !== 'claimed') throw new Error('expected a claim')
      const duplicate = engineB.begin(request)
      await sleep(150)
      await original.claim.complete(stored)
      const outcome = await Promise.race([
        duplicate,
        sleep(5_000).then(() => 'still waiting' as const),
      ])
      expect(typeof outcome === 'object' && outcome.kind).toBe('replay')
    } finally {
      await b.close()
      await a.close()
    }
  })

  it('claims overlapping keys from two instances in opposite orders without a deadlock, each key once', async () => {
    const a = await openTemporaryPostgres()
    const b = await openTemporaryPostgres({ table: a.table, channel: a.channel })
    try {
      let claimed = 0
      let failed = 0
      for (let round = 0; round < 10; round++) {
        const keys = Array.from({ length: 100 }, () => randomUUID())
        // One batch on each instance, sent in the same turn: A's in one order, B's in the other.
        const fromA = keys.map((key) => a.store.claim(request({ scope: 'acct', key })))
        const fromB = [...keys]
          .reverse()
          .map((key) => b.store.claim(request({ scope: 'acct', key })))
        for (const outcome of await Promise.allSettled([...fromA, ...fromB])) {
          if (outcome.status === 'rejected') failed++
          else if (outcome.value.kind === 'claimed') claimed++
        }
      }
      expect({ claimed, failed }).toEqual({ claimed: 1_000, failed: 0 })
    } finally {
      await b.close()
      await a.close()
    }
  })

  it('wakes waiters on another instance for every record of a batch, however many notifications it takes', async () => {
    const a = await openTemporaryPostgres()
    const b = await openTemporaryPostgres({ table: a.table, channel: a.channel })
    try {
      // 300 completions in one batch, with ids long enough to need several notifications.
      const scope = `acct_${'x'.repeat(100)}`
      const claims = Array.from({ length: 300 }, () => request({ scope }))
      for (const claim of claims) expect((await a.store.claim(claim)).kind).toBe('claimed')
      const woken = new Set<string>()
      const unsubscribe = claims.map((claim) =>
        b.store.onSettled!(claim.scope, claim.key, () => {
          woken.add(claim.key)
        }),
      )
      const completed = await Promise.all(claims.map((claim) => a.store.complete(claim, stored)))
      expect(completed.every(Boolean)).toBe(true)
      const deadline = Date.now() + 5_000
      while (woken.size < claims.length && Date.now() < deadline) await sleep(20)
      for (const stop of unsubscribe) stop()
      expect(woken.size).toBe(300)
    } finally {
      await b.close()
      await a.close()
    }
  })

  it('gives the key to exactly one of 100 claimants spread over three instances', async () => {
    const a = await openTemporaryPostgres()
    const b = await openTemporaryPostgres({ table: a.table, channel: a.channel })
    const c = await openTemporaryPostgres({ table: a.table, channel: a.channel })
    try {
      const base = claimRequest()
      const stores = [a.store, b.store, c.store]
      const outcomes = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          stores[i % 3]!.claim({ ...base, token: randomUUID() }),
        ),
      )
      expect(outcomes.filter((outcome) => outcome.kind === 'claimed')).toHaveLength(1)
    } finally {
      await c.close()
      await b.close()
      await a.close()
    }
  })

  it('answers each key of one batch that mixes new keys with keys another instance holds, completed or dead', async () => {
    const a = await openTemporaryPostgres()
    const b = await openTemporaryPostgres({ table: a.table, channel: a.channel })
    const c = await openTemporaryPostgres({ table: a.table, channel: a.channel })
    try {
      const held = claimRequest()
      const completed = claimRequest()
      const orphaned = claimRequest()
      expect((await a.store.claim(held)).kind).toBe('claimed')
      expect((await a.store.claim(completed)).kind).toBe('claimed')
      expect(await a.store.complete(completed, stored)).toBe(true)
      expect((await c.store.claim(orphaned)).kind).toBe('claimed')
      expect(await killClaimHolders(a.pool, a.table)).toBeGreaterThan(0)
      // c's session is gone (a's too); a's instance starts a new epoch, c's claim is dead.
      const fresh = [claimRequest(), claimRequest(), claimRequest()]
      const retry = (claim: ReturnType<typeof claimRequest>) => ({ ...claim, token: randomUUID() })
      // All in one turn of the event loop: one batch on b.
      const [first, second, third, onHeld, onCompleted, changedBody, onOrphaned] =
        await Promise.all([
          ...fresh.map((claim) => b.store.claim(claim)),
          b.store.claim(retry(held)),
          b.store.claim(retry(completed)),
          b.store.claim({ ...retry(completed), fingerprint: 'e'.repeat(64) }),
          b.store.claim(retry(orphaned)),
        ])
      expect([first.kind, second.kind, third.kind]).toEqual(['claimed', 'claimed', 'claimed'])
      // a's session died too, so its held claim may be taken over like c's.
      expect(onHeld).toMatchObject({ kind: 'claimed', takeover: true })
      expect(
        onCompleted?.kind === 'replay' && Buffer.from(onCompleted.response.body).toString(),
      ).toBe('{"id":1}')
      expect(changedBody?.kind).toBe('mismatch')
      expect(onOrphaned).toMatchObject({ kind: 'claimed', takeover: true })
      const { rows } = await a.pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${a.table} WHERE state = 'in_progress'`,
      )
      expect(Number(rows[0]?.n)).toBe(5)
    } finally {
      await c.close()
      await b.close()
      await a.close()
    }
  })

  it('creates its table safely when several instances start at once', async () => {
    const first = await openTemporaryPostgres()
    await first.close()
    const table = `records_race_${randomUUID().slice(0, 8)}`
    const opened = await Promise.all(
      Array.from({ length: 5 }, () => openTemporaryPostgres({ table })),
    )
    try {
      expect(opened).toHaveLength(5)
      expect((await opened[0]!.store.claim(claimRequest())).kind).toBe('claimed')
    } finally {
      await Promise.all(opened.map((instance) => instance.close()))
    }
  })
})
