/**
 * What the outside audit found in the engine and the stores (issue 8), one test per finding,
 * each against the real store: every one of these failed on the code before its fix.
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type {
  ClaimOutcome,
  ClaimRequest,
  IdempotencyEvent,
  Store,
  StoredResponse,
} from '@ticksupply/idempotency'
import {
  StoreUnavailableError,
  WaitAbortedError,
  createIdempotencyEngine,
  createManualClock,
  fingerprintRequest,
} from '@ticksupply/idempotency'
import type { SqliteTransaction } from '@ticksupply/idempotency/stores/sqlite'
import Fastify from 'fastify'
import { fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import { outcomeOf } from '../store-contract.js'
import { killClaimHolders, openTemporaryPostgres } from '../support/postgres.js'
import { openTemporarySqlite } from '../support/sqlite.js'
import { keyed } from '../support/requests.js'

function answer(status: number, text = '{"ok":true}'): StoredResponse {
  return {
    status,
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(text),
    requestId: 'req_1',
  }
}

function claimRequest(overrides: Partial<ClaimRequest> = {}): ClaimRequest {
  return {
    scope: 'acct',
    key: randomUUID(),
    token: randomUUID(),
    fingerprint: 'f'.repeat(64),
    leaseMs: 30_000,
    ttlMs: 86_400_000,
    ...overrides,
  }
}

/** Polls `condition` every 100 ms, at most `attempts` times; resolves whether it came true. */
async function eventually(condition: () => Promise<boolean>, attempts = 50): Promise<boolean> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await condition()) return true
    await sleep(100)
  }
  return false
}

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  vi.useRealTimers()
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function sqlite(...args: Parameters<typeof openTemporarySqlite>) {
  const opened = openTemporarySqlite(...args)
  cleanups.push(opened.close)
  return opened
}

async function postgres(...args: Parameters<typeof openTemporaryPostgres>) {
  const opened = await openTemporaryPostgres(...args)
  cleanups.push(opened.close)
  return opened
}

describe('audit 5: the PostgreSQL purge never deletes a record claimed or completed anew', () => {
  it('keeps all of 300 keys claimed again (half of them completed) while one purge of 100,000 expired records runs', async () => {
    const clock = createManualClock(1_000_000)
    const { pool, store, table } = await postgres({ clock })
    const expired = 100_000
    await pool.query(
      `INSERT INTO ${table} (scope, key, fingerprint, state, expires_at, created_at,
                             response_status, response_headers, response_body, original_request_id)
       SELECT 'acct', 'key-' || g, repeat('f', 64), 'completed', 0, 0, 201, '{}', '\\x', 'req_0'
         FROM generate_series(1, $1::int) AS g`,
      [expired],
    )
    const keys = Array.from({ length: 300 }, (_, index) => `key-${String(index * 300 + 1)}`)
    const purge = store.purgeExpired(expired)
    await sleep(20)
    const claims = keys.map((key) => claimRequest({ key, fingerprint: 'e'.repeat(64) }))
    const outcomes = await Promise.all(claims.map((claim) => store.claim(claim)))
    const claimed = claims.filter((_, index) => outcomes[index]?.kind === 'claimed')
    expect(claimed).toHaveLength(300)
    const completed = claimed.filter((_, index) => index % 2 === 0)
    const completions = await Promise.all(
      completed.map((claim) => store.complete(claim, answer(201, '"fresh"'))),
    )
    expect(completions.every(Boolean)).toBe(true)
    await purge
    // Every key must still be held or replay its fresh answer: never claimable again.
    const again = await Promise.all(
      claimed.map((claim) => store.claim({ ...claim, token: randomUUID() })),
    )
    const kinds = again.map((outcome: ClaimOutcome) => outcome.kind)
    expect(kinds.filter((kind) => kind === 'replay')).toHaveLength(150)
    expect(kinds.filter((kind) => kind === 'in_progress')).toHaveLength(150)
  })
})

describe('audit 6: a waiting duplicate whose client left never runs the operation', () => {
  it('gives back unused a claim it won after its signal aborted', async () => {
    const { store } = sqlite()
    // The real store; the duplicate's winning claim is held back until the client has left.
    let holdNext: ((release: () => void) => void) | undefined
    const gated: Store<SqliteTransaction> = {
      ...store,
      claim: async (request) => {
        const outcome = await store.claim(request)
        const hold = holdNext
        if (hold !== undefined && outcome.kind === 'claimed') {
          holdNext = undefined
          await new Promise<void>((resolve) => {
            hold(resolve)
          })
        }
        return outcome
      },
    }
    const engine = createIdempotencyEngine({
      store: gated,
      waitMs: 30_000,
      initialPollMs: 20_000,
    })
    const request = keyed()
    const original = await engine.begin(request)
    if (original.kind !== 'claimed') throw new Error('expected a claim')
    const controller = new AbortController()
    const duplicate = engine.begin({ ...request, signal: controller.signal })
    await sleep(50)
    const held = new Promise<() => void>((resolve) => {
      holdNext = resolve
    })
    // The original gives the key back; the duplicate is woken and wins it...
    await original.claim.release()
    const release = await held
    // ...but its client left while that claim was in flight.
    controller.abort()
    release()
    await expect(duplicate).rejects.toBeInstanceOf(WaitAbortedError)
    // The key is free: a retry runs the operation.
    const retry = await engine.begin(request)
    expect(retry.kind).toBe('claimed')
  })
})

describe('audit 7: a release the store refused never strands the key', () => {
  async function breakTable(pool: { query: (sql: string) => Promise<unknown> }, table: string) {
    await pool.query(`ALTER TABLE ${table} RENAME TO ${table}_away`)
    return async () => {
      await pool.query(`ALTER TABLE ${table}_away RENAME TO ${table}`)
    }
  }

  it('retries the release in the background once the store is back: the retry claims the key', async () => {
    const { pool, store, table } = await postgres()
    // No waiting: each look at the key answers at once whether it is still held.
    const engine = createIdempotencyEngine({ store, waitMs: 0 })
    const request = keyed()
    const begun = await engine.begin(request)
    if (begun.kind !== 'claimed') throw new Error('expected a claim')
    const repair = await breakTable(pool, table)
    await expect(begun.claim.release()).rejects.toBeInstanceOf(StoreUnavailableError)
    await repair()
    expect(
      await eventually(
        async () => (await engine.begin(request).catch(() => undefined))?.kind === 'claimed',
      ),
    ).toBe(true)
    expect(begun.claim.state).toBe('abandoned')
  })

  it('retries the release that execute() swallows when the operation throws', async () => {
    const { pool, store, table } = await postgres()
    const engine = createIdempotencyEngine({ store, waitMs: 0 })
    const request = keyed()
    let repair: (() => Promise<void>) | undefined
    await expect(
      engine.execute(request, async () => {
        repair = await breakTable(pool, table)
        throw new Error('the operation failed while the store was down')
      }),
    ).rejects.toThrow('the operation failed')
    await repair?.()
    expect(
      await eventually(
        async () => (await engine.begin(request).catch(() => undefined))?.kind === 'claimed',
      ),
    ).toBe(true)
  })
})

describe('audit 8: a request that lost its claim answers "still in progress", not its own answer', () => {
  it('answers 409 in progress for an operation that finished after its instance stopped vouching, and stores nothing', async () => {
    const holder = await postgres()
    const peer = await postgres({ table: holder.table, channel: holder.channel })
    const app = Fastify()
    let runs = 0
    let proceed!: () => void
    const gate = new Promise<void>((resolve) => {
      proceed = resolve
    })
    await app.register(fastifyIdempotency, {
      engine: createIdempotencyEngine({ store: holder.store }),
      scope: () => 'acct',
    })
    app.post('/things', async (_request, reply) => {
      runs++
      await gate
      return reply.code(404).send({ error: { code: 'not_found', message: 'No such thing' } })
    })
    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    cleanups.push(() => app.close())
    const key = randomUUID()
    const pending = fetch(`${url}/things`, {
      method: 'POST',
      headers: { 'idempotency-key': key, 'content-type': 'application/json' },
      body: '{}',
    })
    expect(await eventually(() => Promise.resolve(runs === 1))).toBe(true)
    // The holder's session ends as in a crash of its database connection: its claims are no
    // longer its own.
    expect(await killClaimHolders(peer.pool, holder.table)).toBe(1)
    proceed()
    const answer = await pending
    expect(answer.status).toBe(409)
    expect(await answer.json()).toEqual({
      error: {
        code: 'already_exists',
        message: 'Request is still in progress. Please retry later.',
      },
    })
    expect(answer.headers.get('retry-after')).toBe('1')
    // Its 404 was never stored: the next claimant takes the key over and runs the operation.
    const fingerprint = fingerprintRequest('POST', '/things', Buffer.from('{}'))
    const next = await peer.store.claim(claimRequest({ scope: 'acct', key, fingerprint }))
    expect(outcomeOf(next)).toBe('claimed (takeover)')
  })
})

describe('audit 9: a throwing onEvent hook changes no answer', () => {
  it('claims, completes, replays and answers mismatches as usual, and reports what the hook threw', async () => {
    const reported: IdempotencyEvent['type'][] = []
    const engine = createIdempotencyEngine({
      store: sqlite().store,
      onEvent: (event) => {
        if (event.type === 'completed') return Promise.reject(new Error('async hook broke'))
        throw new Error(`hook broke on ${event.type}`)
      },
      onHookError: (_error, event) => {
        reported.push(event.type)
      },
    })
    const request = keyed()
    const first = await engine.begin(request)
    if (first.kind !== 'claimed') throw new Error('expected a claim')
    await first.claim.complete(answer(201, '"once"'))
    const replay = await engine.begin(request)
    expect(replay.kind === 'replay' && Buffer.from(replay.response.body).toString()).toBe('"once"')
    await expect(engine.begin({ ...request, body: Buffer.from('{"a":2}') })).rejects.toThrow(
      'different request parameters',
    )
    await sleep(10)
    expect(reported).toEqual(['claimed', 'completed', 'replayed', 'mismatch'])
  })
})

describe('audit 12: the replay cache is bounded by bytes', () => {
  it('holds no more than its byte budget after 300 responses of 451 kB, and still replays each from the file', async () => {
    const { store } = sqlite()
    const engine = createIdempotencyEngine({ store })
    const big = Buffer.alloc(451 * 1024, 'x')
    const requests = Array.from({ length: 300 }, () => keyed())
    for (const request of requests) {
      await engine.execute(request, () =>
        Promise.resolve({ ...answer(201), body: Buffer.concat([Buffer.from(request.key), big]) }),
      )
    }
    const stats = store.cache()
    expect(stats.bytes).toBeLessThanOrEqual(16 * 1024 * 1024)
    // Bodies this large are not cached at all: a few of them must not evict many small ones.
    expect(stats.entries).toBe(0)
    for (const request of requests.slice(0, 5)) {
      const replay = await engine.begin(request)
      expect(
        replay.kind === 'replay' && Buffer.from(replay.response.body).subarray(0, 36).toString(),
      ).toBe(request.key)
    }
  })
})

describe('audit 13: the cache learns only committed state, on the store clock', () => {
  it('SQLite: a completion whose group commit fails is never replayed', async () => {
    const { connection, store } = sqlite()
    connection.database.exec(`
      CREATE TABLE parents (id INTEGER PRIMARY KEY);
      CREATE TABLE children (parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED);`)
    const first = claimRequest()
    expect((await store.claim(first)).kind).toBe('claimed')
    // In one turn: the completion, a duplicate's claim, and a write whose deferred foreign key
    // makes the whole group commit fail at COMMIT.
    const completion = store.complete(first, answer(201, '"never stored"'))
    const duplicate = store.claim({ ...first, token: randomUUID() })
    const poison = connection.write((db) => db.prepare('INSERT INTO children VALUES (42)').run())
    await expect(poison).rejects.toThrow(/FOREIGN KEY/)
    await expect(completion).rejects.toThrow(/FOREIGN KEY/)
    expect((await duplicate.catch(() => undefined))?.kind).not.toBe('replay')
    // Nothing was stored: no replay, now or later.
    const later = await store.claim({ ...first, token: randomUUID() })
    expect(later.kind).not.toBe('replay')
  })

  it("PostgreSQL: a cached record expires on the database's clock, whatever this process's clock says", async () => {
    // This process's clock runs an hour behind the database's.
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true })
    vi.setSystemTime(Date.now() - 3_600_000)
    const { store } = await postgres()
    const first = claimRequest({ ttlMs: 1_500 })
    expect((await store.claim(first)).kind).toBe('claimed')
    expect(await store.complete(first, answer(201))).toBe(true)
    expect((await store.claim({ ...first, token: randomUUID() })).kind).toBe('replay')
    await sleep(2_000)
    // Expired on the database's clock: the key is new again, even for another request.
    const later = await store.claim({ ...first, token: randomUUID(), fingerprint: 'e'.repeat(64) })
    expect(later.kind).toBe('claimed')
  })
})
