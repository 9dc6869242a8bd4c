/**
 * Per-account token buckets: the bucket arithmetic, the database store on SQLite and on
 * PostgreSQL (driven by an explicit clock), and the headers and 429s over HTTP.
 */
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { ConfigError, loadConfig, parseDatabaseUrl } from '../src/config.js'
import type { Database, SqlValue } from '../src/db/database.js'
import { migrate } from '../src/db/migrations.js'
import { openDatabase } from '../src/db/open-database.js'
import type { RateLimitDecision, RateLimitWindow } from '../src/domain/rate-limit-store.js'
import {
  createDatabaseRateLimitStore,
  createMemoryRateLimitStore,
} from '../src/domain/rate-limit-store.js'
import {
  fullBucket,
  msUntilToken,
  refill,
  takeToken,
  tokensLeft,
} from '../src/domain/token-bucket.js'
import { createTestDatabase } from '../../../test-support/postgres-database.js'
import type { Answer, SpawnedServer, TestServer } from './support/server.js'
import {
  ACME_KEY,
  ACME_SECOND_KEY,
  GLOBEX_KEY,
  errorOf,
  newKey,
  send,
  spawnServer,
  startServer,
  tempDatabase,
} from './support/server.js'

const T0 = 1_800_000_000_000

describe('a token bucket', () => {
  const spec = { limit: 5, windowMs: 60_000 }

  it('starts full and gives one token a request', () => {
    let state = fullBucket(spec, T0)
    const left: number[] = []
    for (let i = 0; i < 5; i++) {
      const taken = takeToken(spec, state)
      expect(taken).toBeDefined()
      state = taken!
      left.push(tokensLeft(spec, state))
    }
    expect(left).toEqual([4, 3, 2, 1, 0])
    expect(takeToken(spec, state)).toBeUndefined()
  })

  it('refills continuously, one token every window / limit', () => {
    let state = fullBucket(spec, T0)
    for (let i = 0; i < 5; i++) state = takeToken(spec, state)!
    expect(msUntilToken(spec, state)).toBe(12_000)
    expect(takeToken(spec, refill(spec, state, T0 + 11_999))).toBeUndefined()
    expect(takeToken(spec, refill(spec, state, T0 + 12_000))).toBeDefined()
    expect(tokensLeft(spec, refill(spec, state, T0 + 30_000))).toBe(2)
  })

  it('never holds more than the limit, and a clock that goes back refills nothing', () => {
    const empty = { level: 0, updatedAtMs: T0 }
    expect(tokensLeft(spec, refill(spec, empty, T0 + 3_600_000))).toBe(5)
    expect(refill(spec, empty, T0 - 5_000)).toEqual(empty)
  })
})

const MINUTE: RateLimitWindow = { name: 'minute', limit: 5, windowMs: 60_000 }
const HOUR: RateLimitWindow = { name: 'hour', limit: 8, windowMs: 3_600_000 }

const windowOf = (decision: RateLimitDecision, name: 'minute' | 'hour') =>
  decision.windows.find((window) => window.name === name)!

type Backend = 'memory' | 'sqlite' | 'postgres'

async function openDatabases(
  backend: Backend,
  count: number,
): Promise<{ dbs: Database[]; close: () => Promise<void> }> {
  const sqlite = backend === 'sqlite' ? tempDatabase() : undefined
  const url = sqlite?.url ?? (await createTestDatabase(inject('postgresUrl')))
  const dbs: Database[] = []
  for (let i = 0; i < count; i++) {
    const { db } = openDatabase(parseDatabaseUrl(url))
    await migrate(db, T0)
    dbs.push(db)
  }
  return {
    dbs,
    async close() {
      for (const db of dbs) await db.close()
      sqlite?.cleanup()
    },
  }
}

describe.each<Backend>(['memory', 'sqlite', 'postgres'])(
  'the rate-limit store in %s',
  (backend) => {
    let dbs: Database[] = []
    let close = () => Promise.resolve()
    let accounts = 0
    const account = () => `acct_${backend}_${String(++accounts)}`
    // The memory store of one process (SQLite's server), or the table every instance shares.
    const memory = createMemoryRateLimitStore([MINUTE, HOUR])
    const createStore = (db: Database | undefined, windows: readonly RateLimitWindow[]) =>
      backend === 'memory' || db === undefined
        ? memory
        : createDatabaseRateLimitStore(db, windows, { clock: 'caller' })

    beforeAll(async () => {
      if (backend !== 'memory') ({ dbs, close } = await openDatabases(backend, 2))
    })
    afterAll(async () => {
      await close()
    })

    it('allows the limit, refuses the next, and tells when a token is back', async () => {
      const store = createStore(dbs[0], [MINUTE, HOUR])
      const id = account()
      const decisions: RateLimitDecision[] = []
      for (let i = 0; i < 6; i++) decisions.push(await store.take(id, T0))

      expect(decisions.map((decision) => decision.allowed)).toEqual([
        true,
        true,
        true,
        true,
        true,
        false,
      ])
      expect(decisions.map((decision) => windowOf(decision, 'minute').remaining)).toEqual([
        4, 3, 2, 1, 0, 0,
      ])
      expect(decisions.map((decision) => windowOf(decision, 'hour').remaining)).toEqual([
        7, 6, 5, 4, 3, 3,
      ])
      // Reset only once the bucket is empty: on the request that emptied it and on the refusal.
      expect(decisions.map((decision) => windowOf(decision, 'minute').resetAtMs)).toEqual([
        undefined,
        undefined,
        undefined,
        undefined,
        T0 + 12_000,
        T0 + 12_000,
      ])
      expect(windowOf(decisions[5]!, 'hour').resetAtMs).toBeUndefined()
      expect(decisions[5]!.retryAfterMs).toBe(12_000)
      expect((await store.take(id, T0 + 11_999)).retryAfterMs).toBe(1)
      expect((await store.take(id, T0 + 12_000)).allowed).toBe(true)
    })

    it('refuses while any bucket is empty, and a refusal takes nothing from the others', async () => {
      const store = createStore(dbs[0], [MINUTE, HOUR])
      const id = account()
      for (let i = 0; i < 5; i++) await store.take(id, T0)
      // The hour bucket (8 an hour, one token every 450 s) runs out after three more.
      for (const at of [12_000, 24_000, 36_000])
        expect((await store.take(id, T0 + at)).allowed).toBe(true)

      const refused = await store.take(id, T0 + 48_000)
      expect(refused.allowed).toBe(false)
      expect(windowOf(refused, 'minute')).toEqual({
        name: 'minute',
        limit: 5,
        remaining: 1,
        resetAtMs: undefined,
      })
      expect(windowOf(refused, 'hour')).toEqual({
        name: 'hour',
        limit: 8,
        remaining: 0,
        resetAtMs: T0 + 450_000,
      })
      expect(refused.retryAfterMs).toBe(402_000)
      for (let i = 0; i < 50; i++)
        expect((await store.take(id, T0 + 48_000 + i)).allowed).toBe(false)

      // Had the refusals taken anything, the hour bucket would still be empty here.
      const later = await store.take(id, T0 + 450_000)
      expect(later.allowed).toBe(true)
      expect(windowOf(later, 'minute').remaining).toBe(4)
      expect(windowOf(later, 'hour').remaining).toBe(0)
    })

    it('gives each account its own buckets', async () => {
      const store = createStore(dbs[0], [MINUTE, HOUR])
      const [first, second] = [account(), account()]
      for (let i = 0; i < 5; i++) await store.take(first, T0)
      expect((await store.take(first, T0)).allowed).toBe(false)
      expect(windowOf(await store.take(second, T0), 'minute').remaining).toBe(4)
    })

    it('never lets concurrent takes exceed the limit', async () => {
      // On PostgreSQL through two pools; SQLite's connections are synchronous, so two of them in
      // one thread cannot wait for each other (processes sharing a file are tested over HTTP).
      const stores =
        backend === 'memory'
          ? [memory]
          : (backend === 'postgres' ? dbs : dbs.slice(0, 1)).map((db) =>
              createStore(db, [MINUTE, HOUR]),
            )
      const id = account()
      const decisions = await Promise.all(
        Array.from({ length: 40 }, (_, i) => stores[i % stores.length]!.take(id, T0)),
      )
      expect(decisions.filter((decision) => decision.allowed)).toHaveLength(5)
      const remaining = decisions
        .filter((decision) => decision.allowed)
        .map((decision) => windowOf(decision, 'minute').remaining)
        .sort()
      expect(remaining).toEqual([0, 1, 2, 3, 4])
    })

    // The database store's own statements and transactions (the memory store has neither).
    if (backend !== 'memory') {
      it('takes in two statements of one transaction, one when refused', async () => {
        const { db, counts } = counting(dbs[0]!)
        const store = createDatabaseRateLimitStore(db, [MINUTE, HOUR], { clock: 'caller' })
        const id = account()
        for (let i = 0; i < 5; i++) await store.take(id, T0)
        expect(counts).toEqual({ transactions: 5, statements: 10 })
        expect((await store.take(id, T0)).allowed).toBe(false)
        expect(counts).toEqual({ transactions: 6, statements: 11 })
      })

      it("takes for an account's concurrent requests together, not in a transaction each", async () => {
        // Each transaction would hold a pooled connection while it waits for the account's
        // row lock: a busy account would take the whole pool.
        const { db, counts } = counting(dbs[0]!)
        const store = createDatabaseRateLimitStore(db, [MINUTE, HOUR], { clock: 'caller' })
        const [busy, other] = [account(), account()]
        const decisions = await Promise.all([
          ...Array.from({ length: 40 }, (_, i) => store.take(busy, T0 + i)),
          store.take(other, T0),
        ])
        // The first take of each account runs alone; the 39 that came meanwhile, in one more.
        expect(counts.transactions).toBe(3)
        const allowed = decisions.slice(0, 40).filter((decision) => decision.allowed)
        expect(allowed.map((decision) => windowOf(decision, 'minute').remaining)).toEqual([
          4, 3, 2, 1, 0,
        ])
        expect(decisions.slice(0, 5).every((decision) => decision.allowed)).toBe(true)
        expect(windowOf(decisions[40]!, 'minute').remaining).toBe(4)
        expect((await store.take(busy, T0 + 40)).allowed).toBe(false)
      })

      it('starts over when a bucket changed since it was read, and keeps no half-written take', async () => {
        const id = account()
        // The first read reports a minute bucket one unit fuller than stored, as if another take
        // had written it meanwhile: the write of that row finds nothing, the hour's row would.
        let tampered = false
        const db: Database = {
          ...dbs[0]!,
          transaction: (fn, options) =>
            dbs[0]!.transaction(
              (tx) =>
                fn({
                  ...tx,
                  store: tx.store,
                  all: async <Row>(sql: string, params?: readonly SqlValue[]) => {
                    const rows = await tx.all<Row>(sql, params)
                    if (tampered) return rows
                    tampered = true
                    return rows.map((row) => {
                      const r = row as { window_ms: number | string; level: number | string }
                      return Number(r.window_ms) === MINUTE.windowMs
                        ? ({ ...r, level: Number(r.level) + 1 } as Row)
                        : row
                    })
                  },
                }),
              options,
            ),
        }
        const store = createDatabaseRateLimitStore(db, [MINUTE, HOUR], { clock: 'caller' })
        const first = await store.take(id, T0)
        expect(tampered).toBe(true)
        expect(first.allowed).toBe(true)
        expect(windowOf(first, 'minute').remaining).toBe(4)
        expect(windowOf(first, 'hour').remaining).toBe(7)
        // Had the hour's row kept the write of the attempt that started over, 6 would be 5.
        const second = await store.take(id, T0)
        expect(windowOf(second, 'minute').remaining).toBe(3)
        expect(windowOf(second, 'hour').remaining).toBe(6)
      })
    }
  },
)

/** `db`, counting the transactions it runs and the statements run in them. */
function counting(inner: Database): {
  db: Database
  counts: { transactions: number; statements: number }
} {
  const counts = { transactions: 0, statements: 0 }
  const db: Database = {
    ...inner,
    transaction: (fn, options) =>
      inner.transaction((tx) => {
        counts.transactions++
        return fn({
          store: tx.store,
          all: (sql, params) => {
            counts.statements++
            return tx.all(sql, params)
          },
          get: (sql, params) => {
            counts.statements++
            return tx.get(sql, params)
          },
          run: (sql, params) => {
            counts.statements++
            return tx.run(sql, params)
          },
        })
      }, options),
  }
  return { db, counts }
}

const rateHeaders = (answer: Answer) =>
  Object.fromEntries([...answer.headers].filter(([name]) => name.startsWith('x-ratelimit-')))

describe('rate limits over HTTP', () => {
  let server: TestServer
  const subscribe = (datastreamId: number, key?: string) =>
    send(`${server.url}/v1/subscriptions`, {
      body: { datastream_id: datastreamId },
      ...(key === undefined ? {} : { key }),
    })
  // The limiter's clock: real time, moved on by the test to wait out a window without waiting.
  let offsetMs = 0
  const clock = { now: () => Date.now() + offsetMs }
  const aMinutePasses = () => {
    offsetMs += 60_000
  }
  const records = async () =>
    Number(
      (await server.app.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM idempotency_records'))?.n,
    )

  beforeAll(async () => {
    server = await startServer(
      { RATE_LIMIT_PER_MINUTE: '5', RATE_LIMIT_PER_HOUR: '10000' },
      { clock },
    )
  })
  afterAll(async () => {
    await server.close()
  })
  afterEach(() => {
    // An hour later every bucket is full again.
    offsetMs += 3_600_000
  })

  it('counts down on every authenticated response, errors included, and then answers 429', async () => {
    const answers: Answer[] = []
    for (const path of [
      '/v1/exchanges',
      '/v1/datastreams?limit=0',
      '/v1/nowhere',
      '/v1/exchanges',
    ]) {
      answers.push(await send(`${server.url}${path}`))
    }
    expect(answers.map((answer) => answer.status)).toEqual([200, 400, 404, 200])
    expect(answers.map((answer) => answer.headers.get('x-ratelimit-remaining-minute'))).toEqual([
      '4',
      '3',
      '2',
      '1',
    ])
    for (const answer of answers) {
      expect(answer.headers.get('x-ratelimit-limit-minute')).toBe('5')
      expect(answer.headers.get('x-ratelimit-limit-hour')).toBe('10000')
      expect(Number(answer.headers.get('x-ratelimit-remaining-hour'))).toBeLessThan(10_000)
      expect(answer.headers.has('x-ratelimit-reset-minute')).toBe(false)
      expect(answer.headers.has('x-ratelimit-reset-hour')).toBe(false)
    }

    const last = await send(`${server.url}/v1/exchanges`)
    expect(last.status).toBe(200)
    expect(last.headers.get('x-ratelimit-remaining-minute')).toBe('0')
    expect(last.headers.has('x-ratelimit-reset-minute')).toBe(true)

    const before = Math.floor(clock.now() / 1000)
    const refused = await send(`${server.url}/v1/exchanges`)
    const after = Math.ceil(clock.now() / 1000)
    expect(refused.status).toBe(429)
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/)
    const retryAfter = Number(refused.headers.get('retry-after'))
    expect(Number.isInteger(retryAfter)).toBe(true)
    expect(retryAfter).toBeGreaterThanOrEqual(1)
    expect(retryAfter).toBeLessThanOrEqual(12)
    expect(errorOf(refused)).toEqual({
      code: 'rate_limited',
      message: `Rate limit exceeded. Retry after ${String(retryAfter)} seconds.`,
    })
    expect(refused.headers.get('x-ratelimit-remaining-minute')).toBe('0')
    const reset = Number(refused.headers.get('x-ratelimit-reset-minute'))
    expect(reset).toBeGreaterThanOrEqual(before)
    expect(reset).toBeLessThanOrEqual(after + 12)
    expect(refused.headers.has('x-ratelimit-reset-hour')).toBe(false)
    expect(refused.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{16}$/)
  })

  it('charges nothing for a 401, and sends no rate-limit headers with it', async () => {
    for (let i = 0; i < 8; i++) {
      const answer = await send(`${server.url}/v1/exchanges`, { apiKey: 'not-a-key-0123456789' })
      expect(answer.status).toBe(401)
      expect(rateHeaders(answer)).toEqual({})
    }
    const answer = await send(`${server.url}/v1/exchanges`)
    expect(answer.headers.get('x-ratelimit-remaining-minute')).toBe('4')
  })

  it('leaves routes outside /v1 alone', async () => {
    for (let i = 0; i < 8; i++) {
      const answer = await send(`${server.url}/openapi.json`, { apiKey: null })
      expect(answer.status).toBe(200)
      expect(rateHeaders(answer)).toEqual({})
    }
  })

  it('charges nothing for a 429: a minute later the limit is whole again', async () => {
    for (let i = 0; i < 5; i++) await send(`${server.url}/v1/exchanges`)
    for (let i = 0; i < 10; i++) expect((await send(`${server.url}/v1/exchanges`)).status).toBe(429)
    aMinutePasses()
    const statuses: number[] = []
    for (let i = 0; i < 6; i++) statuses.push((await send(`${server.url}/v1/exchanges`)).status)
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429])
  })

  it('answers 429 before the idempotency key is looked at, and leaves the key unused', async () => {
    for (let i = 0; i < 5; i++) await send(`${server.url}/v1/exchanges`)
    const claimsBefore = server.claims()
    const recordsBefore = await records()

    // Even a malformed key gets the 429 (rate limit comes before the key format).
    const malformed = await send(`${server.url}/v1/subscriptions`, {
      key: 'not-a-uuid',
      body: { datastream_id: 401 },
    })
    expect(malformed.status).toBe(429)
    const key = newKey()
    const limited = await subscribe(401, key)
    expect(limited.status).toBe(429)
    expect(errorOf(limited).code).toBe('rate_limited')
    expect(server.claims()).toBe(claimsBefore)
    expect(await records()).toBe(recordsBefore)

    // The client waits it out and retries with the same key: the operation runs, once.
    aMinutePasses()
    const created = await subscribe(401, key)
    expect(created.status).toBe(201)
    expect(created.headers.has('idempotent-replayed')).toBe(false)
    expect(server.claims()).toBe(claimsBefore + 1)
  })

  it('charges a replay like any request, and sends fresh rate-limit headers with it', async () => {
    const key = newKey()
    const first = await subscribe(402, key)
    const replay = await subscribe(402, key)
    expect(first.status).toBe(201)
    expect(replay.status).toBe(201)
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect(first.headers.get('x-ratelimit-remaining-minute')).toBe('4')
    expect(replay.headers.get('x-ratelimit-remaining-minute')).toBe('3')
  })

  it("shares the buckets between an account's keys, and not with another account", async () => {
    const remaining = async (apiKey: string) =>
      (await send(`${server.url}/v1/exchanges`, { apiKey })).headers.get(
        'x-ratelimit-remaining-minute',
      )
    expect(await remaining(ACME_KEY)).toBe('4')
    expect(await remaining(ACME_SECOND_KEY)).toBe('3')
    expect(await remaining(ACME_KEY)).toBe('2')
    expect(await remaining(GLOBEX_KEY)).toBe('4')
  })
})

describe('rate limits across server processes', () => {
  const limits = { RATE_LIMIT_PER_MINUTE: '5', RATE_LIMIT_PER_HOUR: '10000' }

  it('count exactly under concurrent requests on one SQLite process', async () => {
    // One process per SQLite file (its claims live in memory): the buckets are its own.
    const database = tempDatabase()
    const server = await spawnServer({ ...limits, DATABASE_URL: database.url })
    try {
      const answers = await Promise.all(
        Array.from({ length: 30 }, () => send(`${server.url}/v1/exchanges`)),
      )
      const statuses = answers.map((answer) => answer.status)
      expect(statuses.filter((status) => status === 200)).toHaveLength(5)
      expect(statuses.filter((status) => status === 429)).toHaveLength(25)
      const remaining = answers
        .filter((answer) => answer.status === 200)
        .map((answer) => answer.headers.get('x-ratelimit-remaining-minute'))
        .sort()
      expect(remaining).toEqual(['0', '1', '2', '3', '4'])
    } finally {
      server.kill('SIGTERM')
      await server.exited
      database.cleanup()
    }
  })

  it('are shared by two processes on one PostgreSQL database', async () => {
    const databaseUrl = await createTestDatabase(inject('postgresUrl'))
    const servers: SpawnedServer[] = []
    try {
      servers.push(await spawnServer({ ...limits, DATABASE_URL: databaseUrl }))
      servers.push(await spawnServer({ ...limits, DATABASE_URL: databaseUrl }))
      const statuses = (
        await Promise.all(
          Array.from({ length: 30 }, (_, i) => send(`${servers[i % 2]!.url}/v1/exchanges`)),
        )
      ).map((answer) => answer.status)
      expect(statuses.filter((status) => status === 200)).toHaveLength(5)
      expect(statuses.filter((status) => status === 429)).toHaveLength(25)
    } finally {
      for (const server of servers) {
        server.kill('SIGTERM')
        await server.exited
      }
    }
  })
})

describe('the rate-limit settings', () => {
  const base = { DATABASE_URL: 'sqlite::memory:' }

  it('default to 200 a minute and 10,000 an hour', () => {
    const config = loadConfig(base)
    expect([config.rateLimitPerMinute, config.rateLimitPerHour]).toEqual([200, 10_000])
  })

  it('take whole numbers from 1', () => {
    const config = loadConfig({ ...base, RATE_LIMIT_PER_MINUTE: '5', RATE_LIMIT_PER_HOUR: '50' })
    expect([config.rateLimitPerMinute, config.rateLimitPerHour]).toEqual([5, 50])
  })

  it.each([
    ['RATE_LIMIT_PER_MINUTE', '0'],
    ['RATE_LIMIT_PER_MINUTE', '-1'],
    ['RATE_LIMIT_PER_MINUTE', '2.5'],
    ['RATE_LIMIT_PER_MINUTE', 'many'],
    ['RATE_LIMIT_PER_HOUR', '0'],
    ['RATE_LIMIT_PER_HOUR', '100000001'],
  ])('refuse %s=%s at start', (name, value) => {
    expect(() => loadConfig({ ...base, [name]: value })).toThrow(ConfigError)
    expect(() => loadConfig({ ...base, [name]: value })).toThrow(name)
  })
})
