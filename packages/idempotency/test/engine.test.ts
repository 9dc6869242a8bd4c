import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import type { ClaimRequest, StoredResponse } from '@ticksupply/idempotency'
import {
  BodyFingerprint,
  FingerprintMismatchError,
  LeaseLostError,
  RequestInProgressError,
  StoreUnavailableError,
  WaitAbortedError,
  createIdempotencyEngine,
  createManualClock,
  startPurger,
} from '@ticksupply/idempotency'
import type { SqliteStore } from '@ticksupply/idempotency/stores/sqlite'
import { killClaimHolders, openTemporaryPostgres } from './support/postgres.js'
import { openTemporarySqlite } from './support/sqlite.js'
import { keyed } from './support/requests.js'

type Sqlite = ReturnType<typeof openTemporarySqlite>
let sqlite: Sqlite | undefined

afterEach(async () => {
  await sqlite?.close()
  sqlite = undefined
})

function open(...args: Parameters<typeof openTemporarySqlite>): Sqlite {
  sqlite = openTemporarySqlite(...args)
  return sqlite
}

/** The real store, with its claims counted. */
function counting(store: SqliteStore): SqliteStore & { claims: number } {
  const counted = {
    ...store,
    claims: 0,
    claim(request: ClaimRequest) {
      counted.claims++
      return store.claim(request)
    },
  }
  return counted
}

function answer(status: number, text = '{"ok":true}'): StoredResponse {
  return {
    status,
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(text),
    requestId: 'req_1',
  }
}

describe('IdempotencyEngine', () => {
  it('takes a streamed body fingerprint as the bytes, and refuses one made for another path', async () => {
    const engine = createIdempotencyEngine({ store: open().store })
    const request = keyed()
    const first = await engine.begin(request)
    if (first.kind !== 'claimed') throw new Error('expected a claim')
    await first.claim.complete(answer(201))
    const streamed = new BodyFingerprint('POST', '/v1/things')
    for (const byte of request.body as Uint8Array) streamed.add(Uint8Array.of(byte))
    expect((await engine.begin({ ...request, body: streamed })).kind).toBe('replay')
    const elsewhere = new BodyFingerprint('POST', '/v1/other')
    elsewhere.add(request.body as Uint8Array)
    await expect(engine.begin({ ...request, body: elsewhere })).rejects.toThrow(TypeError)
  })

  it('refuses a scope no store can keep apart from another, before any claim', async () => {
    const store = counting(open().store)
    const engine = createIdempotencyEngine({ store })
    for (const scope of ['acct\u0000', 'acct\uD800', '\uDC00acct', 'a'.repeat(513), 5]) {
      await expect(engine.begin(keyed({ scope: scope as string }))).rejects.toThrow(TypeError)
    }
    expect(store.claims).toBe(0)
    for (const scope of ['', 'acct_\u{1F984}', 'é'.repeat(512)]) {
      expect((await engine.begin(keyed({ scope }))).kind).toBe('claimed')
    }
    expect(store.claims).toBe(3)
  })

  it('keeps a scope of any well-formed text exact on PostgreSQL', async () => {
    const postgres = await openTemporaryPostgres()
    try {
      const engine = createIdempotencyEngine({ store: postgres.store })
      const request = keyed({ scope: `acct_\u{1F984}_${'é'.repeat(500)}` })
      const first = await engine.begin(request)
      if (first.kind !== 'claimed') throw new Error('expected a claim')
      await first.claim.complete(answer(201))
      expect((await engine.begin(request)).kind).toBe('replay')
      expect((await engine.begin({ ...request, scope: 'acct_\u{1F985}' })).kind).toBe('claimed')
      await expect(engine.begin({ ...request, scope: 'acct_\uD83E' })).rejects.toThrow(TypeError)
    } finally {
      await postgres.close()
    }
  })

  it('runs the operation once and replays its response afterwards', async () => {
    const engine = createIdempotencyEngine({ store: open().store })
    const request = keyed()
    let runs = 0
    const operation = () => {
      runs++
      return Promise.resolve(answer(201, `{"run":${String(runs)}}`))
    }
    const first = await engine.execute(request, operation)
    const second = await engine.execute(request, operation)
    expect(runs).toBe(1)
    expect(first.replayed).toBe(false)
    expect(second.replayed).toBe(true)
    expect(Buffer.from(second.response.body).toString()).toBe('{"run":1}')
  })

  it('reports a different request under the same key as a mismatch, in progress or not', async () => {
    const engine = createIdempotencyEngine({ store: open().store })
    const request = keyed()
    const outcome = await engine.begin(request)
    await expect(engine.begin({ ...request, body: Buffer.from('{"a":2}') })).rejects.toBeInstanceOf(
      FingerprintMismatchError,
    )
    await expect(engine.begin({ ...request, method: 'DELETE' })).rejects.toBeInstanceOf(
      FingerprintMismatchError,
    )
    if (outcome.kind === 'claimed') await outcome.claim.release()
  })

  it('wakes a waiting duplicate as soon as the original completes, not at its next poll', async () => {
    const { store } = open()
    const counted = counting(store)
    // A poll of 20 s: only the completion signal can end this wait in time.
    const engine = createIdempotencyEngine({
      store: counted,
      waitMs: 30_000,
      initialPollMs: 20_000,
    })
    const request = keyed()
    const original = await engine.begin(request)
    if (original.kind !== 'claimed') throw new Error('expected a claim')
    const duplicate = engine.begin(request)
    await sleep(100)
    await original.claim.complete(answer(201))
    const outcome = await Promise.race([
      duplicate,
      sleep(5_000).then(() => 'still waiting' as const),
    ])
    expect(outcome).not.toBe('still waiting')
    expect(typeof outcome === 'object' && outcome.kind).toBe('replay')
    // The original's claim, the duplicate's first look and its look right after subscribing,
    // and the one look after the wake.
    expect(counted.claims).toBe(4)
  })

  it('never polls a store whose claims live in its own memory: a waiter looks only when woken', async () => {
    const { store } = open()
    const counted = counting(store)
    // The default poll (50 ms, doubling) would look at 50, 150, 350 and 750 ms.
    const engine = createIdempotencyEngine({ store: counted, waitMs: 30_000 })
    const request = keyed()
    const original = await engine.begin(request)
    if (original.kind !== 'claimed') throw new Error('expected a claim')
    const duplicate = engine.begin(request)
    await sleep(900)
    // The original's claim, the duplicate's first look and its look right after subscribing.
    expect(counted.claims).toBe(3)
    await original.claim.complete(answer(201))
    expect((await duplicate).kind).toBe('replay')
    expect(counted.claims).toBe(4)
  })

  it("resumes the original's request before it wakes the duplicates that waited on it", async () => {
    const { store } = open()
    const engine = createIdempotencyEngine({ store, waitMs: 30_000 })
    const request = keyed()
    const original = await engine.begin(request)
    if (original.kind !== 'claimed') throw new Error('expected a claim')
    // In the order the requests resume: the original once its completion is stored, each
    // duplicate once it has its replay. What each does next (answering) follows that order.
    const resumed: string[] = []
    const duplicates = Array.from({ length: 200 }, () =>
      engine.begin(request).then((outcome) => {
        resumed.push(outcome.kind)
      }),
    )
    await sleep(50)
    // The original's answer takes a few steps after its completion (the adapter's hooks, the
    // framework's send): here, five awaits.
    const answered = original.claim.complete(answer(201)).then(async () => {
      for (let step = 0; step < 5; step++) await Promise.resolve()
      resumed.push('original answered')
    })
    await Promise.all([answered, ...duplicates])
    expect(resumed).toHaveLength(201)
    expect(resumed[0]).toBe('original answered')
    expect(resumed.filter((kind) => kind === 'replay')).toHaveLength(200)
  })

  it('still polls a store shared by several processes, for what it cannot announce', async () => {
    const counted = counting(open().store)
    // The same store, declared shared: a dead holder's claim could end unannounced.
    const shared = { ...counted, claimLifetime: 'instance' as const }
    const engine = createIdempotencyEngine({ store: shared, waitMs: 30_000 })
    const request = keyed()
    const original = await engine.begin(request)
    if (original.kind !== 'claimed') throw new Error('expected a claim')
    const duplicate = engine.begin(request)
    await sleep(900)
    // Three looks as above, and the polls at 50, 150 and 350 ms at least.
    expect(counted.claims).toBeGreaterThanOrEqual(6)
    await original.claim.release()
    expect((await duplicate).kind).toBe('claimed')
  })

  it('wakes the duplicates waiting on a SQLite store that closes, which then fail at once', async () => {
    const { store } = open()
    const engine = createIdempotencyEngine({ store, waitMs: 30_000 })
    const request = keyed()
    const original = await engine.begin(request)
    if (original.kind !== 'claimed') throw new Error('expected a claim')
    const duplicates = [engine.begin(request), engine.begin(request)]
    await sleep(50)
    store.close()
    const outcomes = await Promise.race([
      Promise.allSettled(duplicates),
      sleep(5_000).then(() => 'still waiting' as const),
    ])
    expect(outcomes).not.toBe('still waiting')
    if (outcomes === 'still waiting') return
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected')
      if (outcome.status === 'rejected') {
        expect(outcome.reason).toBeInstanceOf(StoreUnavailableError)
      }
    }
    // The dropped claim's completion is refused: the closed store vouches for nothing.
    await expect(original.claim.complete(answer(201))).rejects.toBeInstanceOf(LeaseLostError)
  })

  it('answers "still in progress" when the original outlasts the wait', async () => {
    const engine = createIdempotencyEngine({ store: open().store, waitMs: 150 })
    const request = keyed()
    const original = await engine.begin(request)
    await expect(engine.begin(request)).rejects.toBeInstanceOf(RequestInProgressError)
    if (original.kind === 'claimed') await original.claim.release()
  })

  it('stops waiting when the duplicate is aborted', async () => {
    const engine = createIdempotencyEngine({ store: open().store, waitMs: 30_000 })
    const request = keyed()
    await engine.begin(request)
    const controller = new AbortController()
    const duplicate = engine.begin({ ...request, signal: controller.signal })
    await sleep(60)
    controller.abort()
    await expect(duplicate).rejects.toBeInstanceOf(WaitAbortedError)
  })

  it('lets a waiting duplicate run the operation itself when the original releases the key', async () => {
    const engine = createIdempotencyEngine({ store: open().store })
    const request = keyed()
    let runs = 0
    const original = engine.execute(request, async () => {
      runs++
      await sleep(100)
      throw new Error('the original failed')
    })
    await sleep(20)
    const duplicate = engine.execute(request, () => {
      runs++
      return Promise.resolve(answer(201, '{"by":"duplicate"}'))
    })
    await expect(original).rejects.toThrow('the original failed')
    const result = await duplicate
    expect(result.replayed).toBe(false)
    expect(Buffer.from(result.response.body).toString()).toBe('{"by":"duplicate"}')
    expect(runs).toBe(2)
  })

  it('stores answers below 500 except 408, and releases the rest', async () => {
    const engine = createIdempotencyEngine({ store: open().store })
    for (const [status, stored] of [
      [201, true],
      [200, true],
      [404, true],
      [409, true],
      [408, false],
      [500, false],
      [503, false],
    ] as const) {
      const request = keyed()
      await engine.execute(request, () => Promise.resolve(answer(status)))
      const again = await engine.begin(request)
      expect(`${String(status)}: ${again.kind}`).toBe(
        `${String(status)}: ${stored ? 'replay' : 'claimed'}`,
      )
      if (again.kind === 'claimed') await again.claim.release()
    }
  })

  it('gives the key back, with a TypeError, for an operation that answers no storable response', async () => {
    const engine = createIdempotencyEngine({ store: open().store })
    const request = keyed()
    const noResponses: unknown[] = [
      // No answer at all (a fetch Response.error()), and no final one.
      answer(0),
      answer(103),
      answer(200.5),
      undefined,
      { ...answer(201), headers: { 'content-type': 42 } },
      { ...answer(201), body: 'not bytes' },
    ]
    for (const response of noResponses) {
      await expect(
        engine.execute(request, () => Promise.resolve(response as StoredResponse)),
      ).rejects.toThrow(TypeError)
    }
    // Every one gave the key back: the next request claims it.
    const again = await engine.begin(request)
    expect(again.kind).toBe('claimed')
    if (again.kind === 'claimed') await again.claim.release()
  })

  it('stores a response as a record keeps it: lower-case names, no header without a value, none that must never be kept', async () => {
    const engine = createIdempotencyEngine({ store: open().store })
    const request = keyed()
    const given = {
      ...answer(201),
      headers: {
        'Content-Type': 'text/plain',
        location: undefined,
        'set-cookie': 'session=secret',
      } as unknown as Record<string, string>,
    }
    await engine.execute(request, () => Promise.resolve(given))
    const replay = await engine.begin(request)
    if (replay.kind !== 'replay') throw new Error(`expected a replay, got ${replay.kind}`)
    expect(replay.response.headers).toEqual({ 'content-type': 'text/plain' })
    // No headers at all is none to keep.
    const bare = keyed()
    const noHeaders = { ...answer(204), headers: null } as unknown as StoredResponse
    await engine.execute(bare, () => Promise.resolve(noHeaders))
    const bareReplay = await engine.begin(bare)
    if (bareReplay.kind !== 'replay') throw new Error(`expected a replay, got ${bareReplay.kind}`)
    expect(bareReplay.response.headers).toEqual({})
  })

  it('refuses to store a status no answer can carry, and keeps the claim to be released', async () => {
    const engine = createIdempotencyEngine({ store: open().store })
    const request = keyed()
    const outcome = await engine.begin(request)
    if (outcome.kind !== 'claimed') throw new Error(`expected a claim, got ${outcome.kind}`)
    for (const status of [0, 99, 150, 600, 201.5, Number.NaN]) {
      await expect(outcome.claim.complete(answer(status))).rejects.toThrow(TypeError)
    }
    await outcome.claim.release()
    expect((await engine.begin(request)).kind).toBe('claimed')
  })

  it('holds a claim however long the operation runs, with no renewal, where claims end with their holder', async () => {
    const { store } = open()
    const engine = createIdempotencyEngine({ store, leaseMs: 150, waitMs: 0 })
    const request = keyed()
    const original = await engine.begin(request)
    // Four leases long: a lease store would need renewals; this one holds it in memory.
    for (let i = 0; i < 6; i++) {
      await sleep(100)
      await expect(engine.begin(request)).rejects.toBeInstanceOf(RequestInProgressError)
    }
    if (original.kind !== 'claimed') throw new Error('expected a claim')
    expect(original.claim.signal.aborted).toBe(false)
    await original.claim.complete(answer(201))
    expect((await engine.begin(request)).kind).toBe('replay')
  })

  it('counts a PostgreSQL claim lost once its instance stopped vouching while the event loop stood still, before any timer says so', async () => {
    const holder = await openTemporaryPostgres({ leaseMs: 300 })
    try {
      const engine = createIdempotencyEngine({ store: holder.store })
      const begun = await engine.begin(keyed())
      if (begun.kind !== 'claimed') throw new Error('expected a claim')
      const { claim } = begun
      expect(claim.state).toBe('active')
      // Nothing else runs meanwhile: no heartbeat, no timer. Past the instance's lease another
      // instance may take the key over.
      const until = performance.now() + 2 * 300
      while (performance.now() < until) {
        // Busy: the event loop is blocked.
      }
      expect(claim.state).toBe('lost')
      expect(claim.signal.aborted).toBe(true)
    } finally {
      await holder.close()
    }
  })

  it('aborts the operation and refuses its completion once the store can no longer vouch for the claim', async () => {
    const holder = await openTemporaryPostgres()
    const peer = await openTemporaryPostgres({ table: holder.table, channel: holder.channel })
    try {
      const engine = createIdempotencyEngine({ store: holder.store })
      const request = keyed()
      const first = await engine.begin(request)
      if (first.kind !== 'claimed') throw new Error('expected a claim')
      const aborted = new Promise<void>((resolve) => {
        first.claim.signal.addEventListener('abort', () => {
          resolve()
        })
      })
      // The holder's session ends as in a crash: its instance lock is gone.
      expect(await killClaimHolders(peer.pool, holder.table)).toBe(1)
      await aborted
      expect(first.claim.state).toBe('lost')
      await expect(first.claim.complete(answer(201, '"stale"'))).rejects.toBeInstanceOf(
        LeaseLostError,
      )
      const second = await createIdempotencyEngine({ store: peer.store }).begin(request)
      expect(second.kind).toBe('claimed')
      if (second.kind === 'claimed') await second.claim.complete(answer(201, '"fresh"'))
      const replay = await createIdempotencyEngine({ store: peer.store }).begin(request)
      expect(replay.kind === 'replay' && Buffer.from(replay.response.body).toString()).toBe(
        '"fresh"',
      )
    } finally {
      await peer.close()
      await holder.close()
    }
  })

  it('fails closed when the store is down', async () => {
    const sqliteHandle = open()
    const engine = createIdempotencyEngine({ store: sqliteHandle.store })
    sqliteHandle.connection.close()
    await expect(engine.begin(keyed())).rejects.toBeInstanceOf(StoreUnavailableError)
  })

  it.each([
    ['leaseMs', { leaseMs: 0 }],
    ['ttlMs', { ttlMs: -1 }],
    ['waitMs', { waitMs: 1.5 }],
  ])('refuses a bad option (%s) with a TypeError naming it', (_name, options) => {
    const store = open().store
    expect(() => createIdempotencyEngine({ store, ...options })).toThrow(TypeError)
  })

  it('takes a record lifetime shorter than the default lease on a store whose claims are no leases', async () => {
    const engine = createIdempotencyEngine({ store: open().store, ttlMs: 10_000 })
    expect(engine.options.ttlMs).toBe(10_000)
    expect((await engine.begin(keyed())).kind).toBe('claimed')
  })
})

describe('startPurger', () => {
  it('works a backlog off in runs that follow each other quickly, then waits its interval', async () => {
    const clock = createManualClock(Date.now())
    const { store } = open(clock)
    const engine = createIdempotencyEngine({ store, ttlMs: 60_000, leaseMs: 1_000 })
    for (let i = 0; i < 45; i++) await engine.execute(keyed(), () => Promise.resolve(answer(201)))
    clock.advance(60_000)
    const runs: number[] = []
    const purger = startPurger(store, {
      batchSize: 10,
      maxBatchesPerRun: 2,
      intervalMs: 3_600_000,
      backlogDelayMs: 20,
      onRun: (deleted) => runs.push(deleted),
    })
    try {
      const deadline = Date.now() + 10_000
      while (runs.length < 3 && Date.now() < deadline) await sleep(10)
      // 20 + 20 + 5: a backlog of 45 is gone in three runs; the next would wait an hour.
      expect(runs).toEqual([20, 20, 5])
      await sleep(100)
      expect(runs).toHaveLength(3)
    } finally {
      await purger.stop()
    }
  })

  it('deletes expired records in batches, up to its per-run limit', async () => {
    const clock = createManualClock(Date.now())
    const { store } = open(clock)
    const engine = createIdempotencyEngine({ store, ttlMs: 60_000, leaseMs: 1_000 })
    for (let i = 0; i < 25; i++) await engine.execute(keyed(), () => Promise.resolve(answer(201)))
    clock.advance(60_000)
    const purger = startPurger(store, { batchSize: 10, maxBatchesPerRun: 2, intervalMs: 3_600_000 })
    try {
      expect(await purger.runOnce()).toBe(20)
      expect(await purger.runOnce()).toBe(5)
      expect(await purger.runOnce()).toBe(0)
    } finally {
      await purger.stop()
    }
  })
})
