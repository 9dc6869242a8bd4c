/**
 * A token bucket in exact integer arithmetic.
 *
 * A bucket of `limit` tokens per `windowMs` holds up to `limit` tokens and refills continuously
 * at `limit / windowMs` tokens a millisecond. Fractions of a token are kept exactly by counting
 * in units of `1 / windowMs` token: one token is `windowMs` units, the capacity is
 * `limit * windowMs` units and every elapsed millisecond adds `limit` units. No floating point,
 * and a level stays meaningful when `limit` changes between restarts (it is clamped to the new
 * capacity).
 */
export interface BucketSpec {
  readonly limit: number
  readonly windowMs: number
}

/** What a store keeps per bucket: the level in units, as of `updatedAtMs`. */
export interface BucketState {
  readonly level: number
  readonly updatedAtMs: number
}

/** A bucket that was never used: full. */
export function fullBucket(spec: BucketSpec, nowMs: number): BucketState {
  return { level: spec.limit * spec.windowMs, updatedAtMs: nowMs }
}

/**
 * The bucket at `nowMs`, refilled for the time since its last update. A clock that went back
 * (another instance's clock lags) refills nothing and never moves `updatedAtMs` back.
 */
export function refill(spec: BucketSpec, state: BucketState, nowMs: number): BucketState {
  const capacity = spec.limit * spec.windowMs
  // Past one window the bucket is full anyway; capping the elapsed time keeps the product small.
  const elapsedMs = Math.min(Math.max(nowMs - state.updatedAtMs, 0), spec.windowMs)
  return {
    level: Math.min(state.level + elapsedMs * spec.limit, capacity),
    updatedAtMs: Math.max(state.updatedAtMs, nowMs),
  }
}

/** Whole tokens left. */
export function tokensLeft(spec: BucketSpec, state: BucketState): number {
  return Math.max(Math.floor(state.level / spec.windowMs), 0)
}

/** The bucket with one token taken, or undefined when it holds less than one. */
export function takeToken(spec: BucketSpec, state: BucketState): BucketState | undefined {
  if (state.level < spec.windowMs) return undefined
  return { level: state.level - spec.windowMs, updatedAtMs: state.updatedAtMs }
}

/** Milliseconds from `state.updatedAtMs` until the bucket holds a whole token again (0: now). */
export function msUntilToken(spec: BucketSpec, state: BucketState): number {
  const missing = spec.windowMs - state.level
  return missing <= 0 ? 0 : Math.ceil(missing / spec.limit)
}
