import type { Clock } from './clock.js'
import { systemClock } from './clock.js'
import type { Store, StoreTransaction } from './store.js'

/** Events the engine reports, for metrics and logs. Keys are never included, only scopes. */
export type IdempotencyEvent =
  | { readonly type: 'claimed'; readonly takeover: boolean }
  | { readonly type: 'replayed' }
  | { readonly type: 'mismatch' }
  | { readonly type: 'waited'; readonly outcome: 'replayed' | 'claimed' | 'timed_out' | 'aborted' }
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
   * How long a claim holds without renewal. The running request renews it every third of this,
   * so a process that dies frees its keys within one lease.
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
  /** Called synchronously for every engine event; must not throw. */
  readonly onEvent?: (event: IdempotencyEvent) => void
}

export type ResolvedIdempotencyOptions<Tx extends StoreTransaction> = Required<
  IdempotencyOptions<Tx>
>

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(
      `Expected \`${name}\` to be a positive integer of milliseconds, got ${String(value)}.`,
    )
  }
  return value
}

/** Validates the options once, at construction, and fills in the defaults. */
export function resolveIdempotencyOptions<Tx extends StoreTransaction>(
  options: IdempotencyOptions<Tx>,
): ResolvedIdempotencyOptions<Tx> {
  // Checked at run time too: JavaScript callers get a TypeError, not a crash on first use.
  if (typeof (options as { store?: unknown } | undefined)?.store !== 'object') {
    throw new TypeError('Expected `store` to be an idempotency Store.')
  }
  const leaseMs = positiveInteger('leaseMs', options.leaseMs, 30_000)
  const ttlMs = positiveInteger('ttlMs', options.ttlMs, 86_400_000)
  if (ttlMs < leaseMs) {
    throw new TypeError(`Expected \`ttlMs\` (${ttlMs}) to be at least \`leaseMs\` (${leaseMs}).`)
  }
  const waitMs = options.waitMs === 0 ? 0 : positiveInteger('waitMs', options.waitMs, 3_000)
  return Object.freeze({
    store: options.store,
    ttlMs,
    leaseMs,
    waitMs,
    initialPollMs: positiveInteger('initialPollMs', options.initialPollMs, 50),
    clock: options.clock ?? systemClock,
    onEvent: options.onEvent ?? (() => undefined),
  })
}
