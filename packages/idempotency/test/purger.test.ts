/**
 * When `startPurger` runs, on a real SQLite store: its schedule is read off Vitest's fake clock
 * (timers and `performance.now()`), so every assertion is about counts and times on that clock,
 * never about how fast this machine is. The store's own clock is a manual one, which decides
 * what has expired.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { ManualClock, Store, StoreTransaction } from '@ticksupply/idempotency'
import { createIdempotencyEngine, createManualClock, startPurger } from '@ticksupply/idempotency'
import type { Purger, PurgerOptions } from '@ticksupply/idempotency'
import { openTemporarySqlite } from './support/sqlite.js'
import { keyed } from './support/requests.js'

type Sqlite = ReturnType<typeof openTemporarySqlite>
let sqlite: Sqlite | undefined

afterEach(async () => {
  vi.useRealTimers()
  await sqlite?.close()
  sqlite = undefined
})

const TTL_MS = 60_000

/**
 * A SQLite store holding `expired` records that have just expired, followed by `live` ones that
 * expire a millisecond later. Written with real timers (the store's group commit uses them).
 */
async function storeWith(
  expired: number,
  live = 0,
): Promise<{ sqlite: Sqlite; clock: ManualClock; count: () => number }> {
  const clock = createManualClock(Date.now())
  sqlite = openTemporarySqlite(clock)
  const engine = createIdempotencyEngine({ store: sqlite.store, ttlMs: TTL_MS, leaseMs: 1_000 })
  const write = () =>
    engine.execute(keyed(), () =>
      Promise.resolve({ status: 201, headers: {}, body: Buffer.from('{}'), requestId: 'req_1' }),
    )
  // At once: the writes share the store's group commits.
  await Promise.all(Array.from({ length: expired }, write))
  clock.advance(1)
  await Promise.all(Array.from({ length: live }, write))
  clock.advance(TTL_MS - 1)
  const database = sqlite.connection.database
  const count = () =>
    (database.prepare('SELECT count(*) AS n FROM idempotency_records').get() as { n: number }).n
  expect(count()).toBe(expired + live)
  return { sqlite, clock, count }
}

/** The real store, with every batch taking `ms` on the (fake) clock, as over a network. */
function slowed<Tx extends StoreTransaction>(store: Store<Tx>, ms: number): Store<Tx> {
  return {
    ...store,
    async purgeExpired(limit) {
      const deleted = await store.purgeExpired(limit)
      await new Promise((resolve) => setTimeout(resolve, ms))
      return deleted
    },
  }
}

/** Starts a purger on fake timers; `runs` gets each run's deletions and its end, from the start. */
function started<Tx extends StoreTransaction>(store: Store<Tx>, options: PurgerOptions) {
  const runs: { deleted: number; endedAt: number }[] = []
  const start = performance.now()
  const purger = startPurger(store, {
    ...options,
    onRun: (deleted) => runs.push({ deleted, endedAt: performance.now() - start }),
    onError: (error) => {
      throw error
    },
  })
  return { purger, runs }
}

/** Stops the purger, driving the fake clock until a run in flight has ended. */
async function stop(purger: Purger): Promise<void> {
  const stopped = purger.stop()
  await vi.runAllTimersAsync()
  await stopped
}

describe('startPurger while a backlog remains', () => {
  it('by default runs again 10 ms after a quick run, not a second later', async () => {
    const { sqlite, count } = await storeWith(45, 5)
    vi.useFakeTimers()
    const { purger, runs } = started(sqlite.store, {
      batchSize: 10,
      maxBatchesPerRun: 2,
      intervalMs: 3_600_000,
    })
    try {
      await vi.advanceTimersByTimeAsync(999)
      // The first run starts 10 ms after the start. A run takes 1 ms per full batch on the fake
      // clock (its yield to requests: a timer of 0 ms is one of 1 ms); the 10 ms floor follows.
      expect(runs).toEqual([
        { deleted: 20, endedAt: 10 + 2 },
        { deleted: 20, endedAt: 12 + 10 + 2 },
        // One short batch: no backlog is left.
        { deleted: 5, endedAt: 24 + 10 },
      ])
      expect(count()).toBe(5)
      // No backlog: the next run waits its interval.
      await vi.advanceTimersByTimeAsync(34 + 3_600_000 - 999 - 1)
      expect(runs).toHaveLength(3)
      await vi.advanceTimersByTimeAsync(1)
      expect(runs).toHaveLength(4)
      expect(runs[3]?.deleted).toBe(0)
      expect(count()).toBe(5)
    } finally {
      await stop(purger)
    }
  })

  it('by default rests as long as its last run took', async () => {
    const { sqlite, count } = await storeWith(75)
    vi.useFakeTimers()
    // Three batches of 30 ms, each followed by its 1 ms yield: a full run takes 93 ms, and is
    // followed by 93 ms of rest.
    const { purger, runs } = started(slowed(sqlite.store, 30), {
      batchSize: 10,
      maxBatchesPerRun: 3,
      intervalMs: 3_600_000,
    })
    try {
      await vi.advanceTimersByTimeAsync(1_000)
      expect(runs).toEqual([
        { deleted: 30, endedAt: 10 + 93 },
        { deleted: 30, endedAt: 103 + 93 + 93 },
        // A full batch and a short one (5): no backlog is left.
        { deleted: 15, endedAt: 289 + 93 + 61 },
      ])
      expect(count()).toBe(0)
    } finally {
      await stop(purger)
    }
  })

  it('by default never rests longer than its interval', async () => {
    const { sqlite } = await storeWith(75)
    vi.useFakeTimers()
    const { purger, runs } = started(slowed(sqlite.store, 30), {
      batchSize: 10,
      maxBatchesPerRun: 3,
      intervalMs: 50,
    })
    try {
      await vi.advanceTimersByTimeAsync(400)
      // Runs of 93 ms, each 50 ms (the interval) after the last one, not 93 ms.
      expect(runs.slice(0, 3)).toEqual([
        { deleted: 30, endedAt: 10 + 93 },
        { deleted: 30, endedAt: 103 + 50 + 93 },
        { deleted: 15, endedAt: 246 + 50 + 61 },
      ])
    } finally {
      await stop(purger)
    }
  })

  it('with an explicit backlogDelayMs rests exactly that long, however long the run took', async () => {
    const { sqlite, count } = await storeWith(75)
    vi.useFakeTimers()
    const { purger, runs } = started(slowed(sqlite.store, 30), {
      batchSize: 10,
      maxBatchesPerRun: 3,
      intervalMs: 3_600_000,
      backlogDelayMs: 250,
    })
    try {
      await vi.advanceTimersByTimeAsync(2_000)
      // The first run comes after backlogDelayMs too, then each one 250 ms after the last.
      expect(runs).toEqual([
        { deleted: 30, endedAt: 250 + 93 },
        { deleted: 30, endedAt: 343 + 250 + 93 },
        { deleted: 15, endedAt: 686 + 250 + 61 },
      ])
      expect(count()).toBe(0)
    } finally {
      await stop(purger)
    }
  })

  it('never deletes a record that has not expired, however large the backlog before it', async () => {
    const { sqlite, clock, count } = await storeWith(120, 40)
    vi.useFakeTimers()
    const { purger, runs } = started(sqlite.store, {
      batchSize: 10,
      maxBatchesPerRun: 5,
      intervalMs: 3_600_000,
    })
    try {
      await vi.advanceTimersByTimeAsync(1_000)
      // Two full runs and one that ends on a short batch: the 40 records that expire a
      // millisecond from now are all there.
      expect(runs.map(({ deleted }) => deleted)).toEqual([50, 50, 20])
      expect(count()).toBe(40)
      // A millisecond later they have expired, and go.
      clock.advance(1)
      const once = purger.runOnce()
      await vi.advanceTimersByTimeAsync(10)
      expect(await once).toBe(40)
      expect(count()).toBe(0)
    } finally {
      await stop(purger)
    }
  })
})

describe('startPurger options', () => {
  it.each([
    ['intervalMs', { intervalMs: 0 }],
    ['batchSize', { batchSize: 1.5 }],
    ['maxBatchesPerRun', { maxBatchesPerRun: -1 }],
    ['backlogDelayMs', { backlogDelayMs: 0 }],
    ['backlogDelayMs', { backlogDelayMs: Number.NaN }],
  ])('refuses a bad %s with a TypeError naming it', (name, options: PurgerOptions) => {
    sqlite = openTemporarySqlite()
    const { store } = sqlite
    expect(() => startPurger(store, options)).toThrow(TypeError)
    expect(() => startPurger(store, options)).toThrow(`\`${name}\``)
  })
})
