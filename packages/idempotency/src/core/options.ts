import type { Clock } from './clock.js'
import { systemClock } from './clock.js'
import type { Store, StoreTransaction } from './store.js'

/** Events the engine reports, for metrics and logs. Keys are never included, only scopes. */
export type IdempotencyEvent =
  | { readonly type: 'claimed'; readonly takeover: boolean }
  | { readonly type: 'replayed' }
  | { readonly type: 'mismatch' }
  | {
      readonly type: 'waited'
      readonly outcome: 'replayed' | 'claimed' | 'timed_out' | 'aborted'
      /** How long the duplicate waited for the original, in milliseconds. */
      readonly waitedMs: number
    }
  /** A duplicate was answered "still in progress" (409), after its wait or without one. */
  | { readonly type: 'in_progress' }
  /** A waiting duplicate was woken by the store's completion signal, not by its poll timer. */
  | { readonly type: 'woken' }
  | { readonly type: 'completed' }
  | { readonly type: 'released' }
  | { readonly type: 'lease_lost' }
  | { readonly type: 'store_error'; readonly error: unknown }

export interface IdempotencyOptions<Tx extends StoreTransaction = never> {
  /** Where records live. */
  readonly store: Store<Tx>
  /**
   * How long a record lives from its first claim; after that the key is new again.
   * @default 86_400_000 (24 hours)
   */
  readonly ttlMs?: number
  /**
   * For stores whose claims are leases (`claimLifetime: 'lease'`, such as Redis): how long a
   * claim holds without renewal. The engine renews every claim every third of this, so a
   * process that dies frees its keys within one lease. Stores whose claims end with their
   * holder (SQLite, PostgreSQL) use their own liveness and ignore it.
   * @default 30_000
   */
  readonly leaseMs?: number
  /**
   * How long a duplicate waits for the original before answering "still in progress".
   * @default 3_000
   */
  readonly waitMs?: number
  /**
   * First delay of the duplicate's poll; each next one doubles. Waiters are also woken at once
   * when the store can notify.
   * @default 50
   */
  readonly initialPollMs?: number
  /** @default systemClock */
  readonly clock?: Clock
  /**
   * Called for every engine event. An observer: whatever it throws (or the promise it returns
   * rejects with) is reported to `onHookError` and never changes a request's answer, and a
   * returned promise is not awaited.
   */
  readonly onEvent?: (event: IdempotencyEvent) => unknown
  /**
   * Where errors thrown by `onEvent` go.
   * @default console.error
   */
  readonly onHookError?: (error: unknown, event: IdempotencyEvent) => void
}

export interface ResolvedIdempotencyOptions<Tx extends StoreTransaction> {
  readonly store: Store<Tx>
  readonly ttlMs: number
  readonly leaseMs: number
  readonly waitMs: number
  readonly initialPollMs: number
  readonly clock: Clock
  /** `onEvent` made safe: never throws, never rejects. */
  readonly emit: (event: IdempotencyEvent) => void
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(
      `Expected \`${name}\` to be a positive integer of milliseconds, got ${String(value)}.`,
    )
  }
  return value
}

const reportHookError = (error: unknown, event: IdempotencyEvent): void => {
  console.error(`@ticksupply/idempotency: the onEvent hook failed on a ${event.type} event`, error)
}

/** Validates the options once, at construction, and fills in the defaults. */
export function resolveIdempotencyOptions<Tx extends StoreTransaction>(
  options: IdempotencyOptions<Tx>,
): ResolvedIdempotencyOptions<Tx> {
  // Checked at run time too: JavaScript callers get a TypeError, not a crash on first use.
  const store = (options as { store?: Partial<Store<Tx>> } | undefined)?.store
  if (typeof store !== 'object' || typeof store.claim !== 'function') {
    throw new TypeError('Expected `store` to be an idempotency Store.')
  }
  const leaseMs = positiveInteger('leaseMs', options.leaseMs, 30_000)
  const ttlMs = positiveInteger('ttlMs', options.ttlMs, 86_400_000)
  // A lease must end before its record: only where claims are leases. Stores whose claims end
  // with their holder ignore the lease, and a record shorter than its default is theirs to keep.
  if (store.renew !== undefined && ttlMs <= leaseMs) {
    throw new TypeError(`Expected \`ttlMs\` (${ttlMs}) to exceed \`leaseMs\` (${leaseMs}).`)
  }
  const waitMs = options.waitMs === 0 ? 0 : positiveInteger('waitMs', options.waitMs, 3_000)
  for (const name of ['onEvent', 'onHookError'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new TypeError(`Expected \`${name}\` to be a function.`)
    }
  }
  return Object.freeze({
    store: options.store,
    ttlMs,
    leaseMs,
    waitMs,
    initialPollMs: positiveInteger('initialPollMs', options.initialPollMs, 50),
    clock: options.clock ?? systemClock,
    emit: safeEmitter(options.onEvent, options.onHookError ?? reportHookError),
  })
}

function safeEmitter(
  onEvent: ((event: IdempotencyEvent) => unknown) | undefined,
  onHookError: (error: unknown, event: IdempotencyEvent) => void,
): (event: IdempotencyEvent) => void {
  if (onEvent === undefined) return () => undefined
  const report = (error: unknown, event: IdempotencyEvent) => {
    try {
      onHookError(error, event)
    } catch {
      // A reporter that throws too has nowhere left to report to.
    }
  }
  return (event) => {
    try {
      const result = onEvent(event)
      if (result instanceof Promise) {
        result.catch((error: unknown) => {
          report(error, event)
        })
      }
    } catch (error) {
      report(error, event)
    }
  }
}
