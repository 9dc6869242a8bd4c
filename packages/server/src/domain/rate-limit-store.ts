import type { Database } from '../db/database.js'
import { databaseNowMs } from '../db/database.js'
import { ApiError } from './api-error.js'
import type { BucketSpec, BucketState } from './token-bucket.js'
import { fullBucket, msUntilToken, refill, takeToken, tokensLeft } from './token-bucket.js'

export type RateLimitWindowName = 'minute' | 'hour'

/** One of an account's buckets: `limit` requests per `windowMs`. */
export interface RateLimitWindow extends BucketSpec {
  readonly name: RateLimitWindowName
}

/** A bucket as a response reports it. */
export interface RateLimitWindowStatus {
  readonly name: RateLimitWindowName
  readonly limit: number
  /** Whole tokens left after this request. */
  readonly remaining: number
  /** Epoch milliseconds at which the bucket holds a token again; only when none is left. */
  readonly resetAtMs: number | undefined
}

export interface RateLimitDecision {
  readonly allowed: boolean
  readonly windows: readonly RateLimitWindowStatus[]
  /** Refused: milliseconds until every exhausted bucket holds a token again. Allowed: 0. */
  readonly retryAfterMs: number
}

/**
 * Per-account token buckets. Every instance of the server that shares the store shares the
 * buckets, so the limits hold for the account, not per process.
 */
export interface RateLimitStore {
  /**
   * Takes one token from each of the account's buckets, atomically: either every bucket held a
   * token and each loses one, or nothing changes (a refused request costs nothing). Concurrent
   * takes, from this process or any other, never lose an update. `nowMs` is the caller's
   * clock, which a store in this process's memory uses; a store that instances share refills on
   * the database's clock instead, the one they all read.
   */
  take(accountId: string, nowMs: number): Promise<RateLimitDecision>
}

const NOT_DURABLE = { durable: false } as const

/** Concurrent takes lost a compare-and-set this many times in a row: give up with a 503. */
const MAX_ATTEMPTS = 20

class LostRace extends Error {
  override readonly name = 'LostRace'
}

interface Row {
  window_ms: number | string
  level: number | string
  updated_at: number | string
  /** The database's clock when the rows were read. */
  now_ms: number | string
}

/**
 * The buckets in the `rate_limits` table of the application's database: one row per (account,
 * window) with the level and when it was computed (see token-bucket.ts for the units).
 *
 * A take is one transaction of two statements, in portable SQL:
 *
 * 1. Upsert the account's rows and read them back (`RETURNING`): a missing one is created full;
 *    an existing one gets a no-op update, which on PostgreSQL locks it until commit, so
 *    concurrent takes of one account queue here instead of racing (always in the same row
 *    order: no deadlock). On SQLite the transaction (BEGIN IMMEDIATE) already excludes every
 *    other writer, other processes on the same file included.
 * 2. Refill and take in memory. Allowed: one update writes every row back if it still holds
 *    what was read (compare-and-set; with the lock it always does, and should a database let a
 *    race through anyway, the take starts over instead of losing an update). Refused: write
 *    nothing.
 *
 * Every authenticated request takes, and concurrent takes of one account wait for each other's
 * commit, so each statement counts: they are the round trips during which the account's rows
 * stay locked.
 */
export function createDatabaseRateLimitStore(
  db: Database,
  windows: readonly RateLimitWindow[],
  options: {
    /**
     * Whose clock refills the buckets: the database's, which every instance shares, or the
     * `nowMs` each take is given (for tests that walk a clock of their own through the windows).
     * @default 'database'
     */
    readonly clock?: 'database' | 'caller'
  } = {},
): RateLimitStore {
  const byDatabase = options.clock !== 'caller'
  // The buckets are refilled on the database's clock, the one clock every instance shares: on
  // each instance's own, one whose clock ran ahead stamped the buckets in its future, and the
  // others refilled nothing until their clocks caught up (Retry-After of an hour for a
  // one-minute bucket).
  const now = byDatabase ? databaseNowMs(db.dialect) : '?'
  const upsertSql = `INSERT INTO rate_limits (account_id, window_ms, level, updated_at)
    VALUES ${windows.map(() => `(?, ?, ?, ${now})`).join(', ')}
    ON CONFLICT (account_id, window_ms) DO UPDATE SET level = rate_limits.level
    RETURNING window_ms, level, updated_at${byDatabase ? `, ${now} AS now_ms` : ''}`
  // Every window's row in one statement, each only if it still holds what was read.
  const cases = windows.map(() => 'WHEN ? THEN CAST(? AS BIGINT)').join(' ')
  const updateSql = `UPDATE rate_limits
      SET level = CASE window_ms ${cases} END, updated_at = CASE window_ms ${cases} END
    WHERE account_id = ?
      AND (${windows.map(() => '(window_ms = ? AND level = ? AND updated_at = ?)').join(' OR ')})`

  // Not durable: every authenticated request takes a token, and waiting for the disk on each
  // would make reads as slow as writes. A database crash may forget the last moment of takes
  // (the buckets come back a little fuller), never leave them inconsistent.
  const attempt = (accountId: string, nows: readonly number[]): Promise<RateLimitDecision[]> =>
    db.transaction(async (tx) => {
      const firstNow = nows[0] as number
      const rows = await tx.all<Row>(
        upsertSql,
        windows.flatMap((window) => {
          const full = fullBucket(window, firstNow)
          const row = [accountId, window.windowMs, full.level]
          return byDatabase ? row : [...row, full.updatedAtMs]
        }),
      )
      // Every take of the batch at the database's one moment, or each at its own.
      const databaseNow = byDatabase ? Number(rows[0]?.now_ms) : undefined
      const takes = databaseNow === undefined ? nows : nows.map(() => databaseNow)
      const stored = windows.map((window) => {
        const row = rows.find((candidate) => Number(candidate.window_ms) === window.windowMs)
        if (row === undefined) throw new Error(`rate limit row ${window.name} vanished`)
        return { level: Number(row.level), updatedAtMs: Number(row.updated_at) }
      })
      // The takes one after the other, each on the buckets the one before left.
      let current: BucketState[] = stored
      const decisions = takes.map((nowMs) => {
        const { decision, taken } = decideTake(windows, current, nowMs)
        if (taken !== undefined) current = taken
        return decision
      })
      if (current === stored) return decisions
      const after = (index: number) => current[index] as BucketState
      const before = (index: number) => stored[index] as BucketState
      const changed = await tx.run(updateSql, [
        ...windows.flatMap((window, index) => [window.windowMs, after(index).level]),
        ...windows.flatMap((window, index) => [window.windowMs, after(index).updatedAtMs]),
        accountId,
        ...windows.flatMap((window, index) => [
          window.windowMs,
          before(index).level,
          before(index).updatedAtMs,
        ]),
      ])
      // Another take wrote a row since it was read: roll back and start over.
      if (changed !== windows.length) throw new LostRace()
      return decisions
    }, NOT_DURABLE)

  const takeAll = async (accountId: string, nows: readonly number[]) => {
    for (let tries = 1; ; tries++) {
      try {
        return await attempt(accountId, nows)
      } catch (error) {
        if (!(error instanceof LostRace)) throw error
        if (tries >= MAX_ATTEMPTS) {
          throw new ApiError('unavailable', 'The rate limiter is overloaded. Please retry later.')
        }
      }
    }
  }

  // Takes of an account that arrive while one of its transactions runs wait here, and the next
  // transaction takes for all of them: each would otherwise hold a pooled connection while it
  // waits for the account's row lock, and a busy account would starve every other query.
  const waiting = new Map<string, PendingTake[]>()
  const drain = async (accountId: string, queue: PendingTake[]) => {
    while (queue.length > 0) {
      const batch = queue.splice(0, queue.length)
      try {
        const decisions = await takeAll(
          accountId,
          batch.map((pending) => pending.nowMs),
        )
        for (const [index, pending] of batch.entries()) {
          pending.resolve(decisions[index] as RateLimitDecision)
        }
      } catch (error) {
        for (const pending of batch) pending.reject(error)
      }
    }
    waiting.delete(accountId)
  }

  return {
    take(accountId, nowMs) {
      return new Promise<RateLimitDecision>((resolve, reject) => {
        const queue = waiting.get(accountId)
        if (queue !== undefined) {
          queue.push({ nowMs, resolve, reject })
          return
        }
        const fresh = [{ nowMs, resolve, reject }]
        waiting.set(accountId, fresh)
        void drain(accountId, fresh)
      })
    },
  }
}

interface PendingTake {
  readonly nowMs: number
  resolve(decision: RateLimitDecision): void
  reject(error: unknown): void
}

function status(
  window: RateLimitWindow,
  state: BucketState,
  resetAtMs: number | undefined,
): RateLimitWindowStatus {
  return { name: window.name, limit: window.limit, remaining: tokensLeft(window, state), resetAtMs }
}

/**
 * One take, decided in memory: refill each bucket to `nowMs`, then take a token from each or
 * from none. `taken` holds the buckets to store when allowed; undefined when refused (a
 * refused request changes nothing, so retrying early never delays the refill).
 */
export function decideTake(
  windows: readonly RateLimitWindow[],
  stored: readonly BucketState[],
  nowMs: number,
): { decision: RateLimitDecision; taken: BucketState[] | undefined } {
  const buckets = windows.map((window, index) => {
    const current = refill(window, stored[index] ?? fullBucket(window, nowMs), nowMs)
    return { window, current, taken: takeToken(window, current) }
  })
  if (buckets.some((bucket) => bucket.taken === undefined)) {
    let retryAfterMs = 0
    const statuses = buckets.map(({ window, current, taken }) => {
      const waitMs = taken === undefined ? msUntilToken(window, current) : 0
      retryAfterMs = Math.max(retryAfterMs, current.updatedAtMs + waitMs - nowMs)
      return status(window, current, taken === undefined ? current.updatedAtMs + waitMs : undefined)
    })
    return {
      decision: { allowed: false, windows: statuses, retryAfterMs: Math.max(retryAfterMs, 1) },
      taken: undefined,
    }
  }
  const taken = buckets.map((bucket) => bucket.taken as BucketState)
  const statuses = buckets.map(({ window }, index) => {
    const after = taken[index] as BucketState
    const left = tokensLeft(window, after)
    return status(
      window,
      after,
      left === 0 ? after.updatedAtMs + msUntilToken(window, after) : undefined,
    )
  })
  return { decision: { allowed: true, windows: statuses, retryAfterMs: 0 }, taken }
}

/**
 * The buckets in this process's memory: for a server that is the one instance on its
 * database (SQLite, whose file has one owning process). No write per request, so a request
 * never waits for the database's write lock to be counted; the buckets start full again when
 * the process restarts.
 */
export function createMemoryRateLimitStore(windows: readonly RateLimitWindow[]): RateLimitStore {
  const accounts = new Map<string, BucketState[]>()
  return {
    take(accountId, nowMs) {
      const stored = accounts.get(accountId) ?? windows.map((window) => fullBucket(window, nowMs))
      const { decision, taken } = decideTake(windows, stored, nowMs)
      if (taken !== undefined) accounts.set(accountId, taken)
      else if (!accounts.has(accountId)) accounts.set(accountId, stored)
      return Promise.resolve(decision)
    },
  }
}
