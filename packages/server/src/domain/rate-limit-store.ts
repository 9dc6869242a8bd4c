import type { Database } from '../db/database.js'
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
   * takes, from this process or any other, never lose an update.
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
}

/**
 * The buckets in the `rate_limits` table of the application's database: one row per (account,
 * window) with the level and when it was computed (see token-bucket.ts for the units).
 *
 * A take is one transaction, in portable SQL:
 *
 * 1. Upsert the account's rows: a missing one is created full; an existing one gets a no-op
 *    update, which on PostgreSQL locks it until commit, so concurrent takes of one account
 *    queue here instead of racing (always in the same row order: no deadlock). On SQLite the
 *    transaction (BEGIN IMMEDIATE) already excludes every other writer, other processes on the
 *    same file included.
 * 2. Read the rows, refill and take in memory.
 * 3. Allowed: write each row back if it still holds what was read (compare-and-set; with the
 *    lock it always does, and should a database let a race through anyway, the take starts
 *    over instead of losing an update). Refused: write nothing.
 */
export function createDatabaseRateLimitStore(
  db: Database,
  windows: readonly RateLimitWindow[],
): RateLimitStore {
  const upsertSql = `INSERT INTO rate_limits (account_id, window_ms, level, updated_at)
    VALUES ${windows.map(() => '(?, ?, ?, ?)').join(', ')}
    ON CONFLICT (account_id, window_ms) DO UPDATE SET level = rate_limits.level`

  // Not durable: every authenticated request takes a token, and waiting for the disk on each
  // would make reads as slow as writes. A database crash may forget the last moment of takes
  // (the buckets come back a little fuller), never leave them inconsistent.
  const attempt = (accountId: string, nowMs: number): Promise<RateLimitDecision> =>
    db.transaction(async (tx) => {
      await tx.run(
        upsertSql,
        windows.flatMap((window) => {
          const full = fullBucket(window, nowMs)
          return [accountId, window.windowMs, full.level, full.updatedAtMs]
        }),
      )
      const rows = await tx.all<Row>(
        'SELECT window_ms, level, updated_at FROM rate_limits WHERE account_id = ?',
        [accountId],
      )
      const stored = windows.map((window) => {
        const row = rows.find((candidate) => Number(candidate.window_ms) === window.windowMs)
        if (row === undefined) throw new Error(`rate limit row ${window.name} vanished`)
        return { level: Number(row.level), updatedAtMs: Number(row.updated_at) }
      })
      const { decision, taken } = decideTake(windows, stored, nowMs)
      if (taken === undefined) return decision
      for (const [index, window] of windows.entries()) {
        const before = stored[index] as BucketState
        const after = taken[index] as BucketState
        const changed = await tx.run(
          `UPDATE rate_limits SET level = ?, updated_at = ?
            WHERE account_id = ? AND window_ms = ? AND level = ? AND updated_at = ?`,
          [
            after.level,
            after.updatedAtMs,
            accountId,
            window.windowMs,
            before.level,
            before.updatedAtMs,
          ],
        )
        // Another take wrote the row since it was read: roll back and start over.
        if (changed !== 1) throw new LostRace()
      }
      return decision
    }, NOT_DURABLE)

  return {
    async take(accountId, nowMs) {
      for (let tries = 1; ; tries++) {
        try {
          return await attempt(accountId, nowMs)
        } catch (error) {
          if (!(error instanceof LostRace)) throw error
          if (tries >= MAX_ATTEMPTS) {
            throw new ApiError('unavailable', 'The rate limiter is overloaded. Please retry later.')
          }
        }
      }
    },
  }
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
