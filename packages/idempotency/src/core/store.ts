import type { StoredResponse } from './record.js'

/** Identifies one claim: the record at (scope, key) while it carries this token. */
export interface ClaimRef {
  readonly scope: string
  readonly key: string
  readonly token: string
}

export interface ClaimRequest extends ClaimRef {
  /** {@link fingerprintRequest} of the claiming request. */
  readonly fingerprint: string
  /**
   * How long a claim holds without renewal, for stores whose claims are leases
   * (`claimLifetime: 'lease'`); other stores ignore it.
   */
  readonly leaseMs: number
  /** How long the record lives from its first claim. */
  readonly ttlMs: number
}

export type ClaimOutcome =
  /**
   * The caller now owns the key with its token; `takeover` when the claim of a holder that died
   * was taken. `lost`, when present, aborts once the store can no longer vouch for the claim
   * (one signal shared by every claim of a store instance: it costs nothing per claim).
   */
  | {
      readonly kind: 'claimed'
      readonly takeover: boolean
      readonly lost?: AbortSignal
      /**
       * Whether the store still vouches for the claim now, read whenever the claim's state or
       * signal is: false past the store's own deadline even before `lost` aborts, which waits
       * for a timer (the event loop may have stood still while another process took the key).
       */
      readonly vouches?: () => boolean
    }
  /** A completed record with the same fingerprint. */
  | { readonly kind: 'replay'; readonly response: StoredResponse }
  /** A record (in any state) whose fingerprint differs. */
  | { readonly kind: 'mismatch' }
  /** Another request holds the key, with the same fingerprint. */
  | { readonly kind: 'in_progress' }

/**
 * How a claim ends when its holder dies without completing or releasing it:
 *
 * - `process`: claims live in the memory of the one process that owns the store (SQLite); they
 *   end with it, so after a crash nothing is in progress.
 * - `instance`: claims point to their store instance, whose liveness the database tracks (a
 *   session it holds, and one lease the instance renews for all its claims); they end within
 *   seconds when the process dies, and within the lease when the machine vanishes (PostgreSQL).
 * - `lease`: each claim is a lease its holder renews through {@link Store.renew} (Redis).
 */
export type ClaimLifetime = 'process' | 'instance' | 'lease'

/**
 * Hooks of a database transaction that the operation and the completion share. A store whose
 * records live in the same database as the resources takes one in {@link Store.complete}, so
 * that the operation's writes and its stored response commit together or not at all.
 */
export interface StoreTransaction {
  /** Runs after a successful COMMIT, never after a ROLLBACK. */
  afterCommit(fn: () => void): void
}

/**
 * Where idempotency records live. Every method either does all of what it says, atomically, or
 * nothing, and reports store failures by rejecting (the engine turns that into
 * `store_unavailable`). Time (lease and expiry) comes from the store's own clock.
 *
 * @typeParam Tx - the transaction type {@link Store.complete} can join; `never` for stores that
 *   share no database with the resources.
 */
export interface Store<Tx extends StoreTransaction = never> {
  readonly claimLifetime: ClaimLifetime

  /**
   * Claims (scope, key) in one atomic step. Exactly one of any number of concurrent callers
   * (across processes, where the store serves several) gets `claimed` for a key with no live
   * record:
   *
   * - no record, or an expired one: the caller holds the key with its token, and the record
   *   will expire `ttlMs` from now: `claimed`;
   * - a record with another fingerprint: `mismatch` (whatever its state);
   * - `completed`: `replay`;
   * - held by a live holder: `in_progress`;
   * - held by a holder that died (see {@link ClaimLifetime}): moved to the caller's token,
   *   keeping its expiry: `claimed` with `takeover: true`.
   *
   * Never changes a completed record.
   */
  claim(request: ClaimRequest): Promise<ClaimOutcome>

  /**
   * Only for `claimLifetime: 'lease'`: extends the claim's lease to `leaseMs` from now, if and
   * only if the record still carries `ref.token`. Resolves `false` when the claim was lost.
   */
  renew?(ref: ClaimRef, leaseMs: number): Promise<boolean>

  /**
   * Stores the response and marks the record `completed`, if and only if it is held with
   * `ref.token` (compare-and-set: a request that lost its claim can never overwrite the
   * response of the request that took over). Keeps the record's expiry.
   *
   * With `tx`, the write joins that transaction and waiters are woken after it commits.
   * Resolves `false` when the token no longer owns the record.
   */
  complete(ref: ClaimRef, response: StoredResponse, tx?: Tx): Promise<boolean>

  /**
   * Gives the key back if and only if it is held with `ref.token`, so that the next request
   * with the key claims it anew. Resolves `false` when the claim was already lost.
   */
  release(ref: ClaimRef): Promise<boolean>

  /**
   * Registers `listener` to be called each time the record at (scope, key) is completed or
   * released by anyone the store can hear from, until unsubscribed. Returns the unsubscribe
   * function. Optional: without it, waiters fall back to polling.
   *
   * A store whose {@link claimLifetime} is `'process'` hears every way its claims end, and must
   * call the listener for each (and for every key once it can no longer answer for its claims:
   * closed, or its file owned by another): the engine does not poll it, and its waiters sleep
   * until a notice or their deadline.
   */
  onSettled?(scope: string, key: string, listener: () => void): () => void

  /**
   * Deletes up to `limit` records whose expiry has passed, never one that is held by a live
   * holder. Resolves the number deleted.
   */
  purgeExpired(limit: number): Promise<number>
}
