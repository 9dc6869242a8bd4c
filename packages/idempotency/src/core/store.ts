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
  /** How long the claim holds before another request may take it over. */
  readonly leaseMs: number
  /** How long the record lives from its first claim. */
  readonly ttlMs: number
}

export type ClaimOutcome =
  /** The caller now owns the key with its token; `takeover` when a lapsed lease was taken. */
  | { readonly kind: 'claimed'; readonly takeover: boolean }
  /** A completed record with the same fingerprint. */
  | { readonly kind: 'replay'; readonly response: StoredResponse }
  /** A record (in any state) whose fingerprint differs. */
  | { readonly kind: 'mismatch' }
  /** Another request holds a live lease on the key, with the same fingerprint. */
  | { readonly kind: 'in_progress' }

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
  /**
   * Claims (scope, key) in one atomic step. Exactly one of any number of concurrent callers,
   * across processes, gets `claimed` for a key with no live record:
   *
   * - no record, or an expired one: create `in_progress` with the caller's token, a lease of
   *   `leaseMs` and an expiry of `ttlMs` from now: `claimed`;
   * - a record with another fingerprint: `mismatch` (whatever its state);
   * - `completed`: `replay`;
   * - `in_progress` with a live lease: `in_progress`;
   * - `in_progress` whose lease has lapsed: move it to the caller's token with a fresh lease,
   *   keeping its expiry: `claimed` with `takeover: true`.
   *
   * Never changes a completed record.
   */
  claim(request: ClaimRequest): Promise<ClaimOutcome>

  /**
   * Extends the lease of an `in_progress` record to `leaseMs` from now, if and only if it still
   * carries `ref.token`. Resolves `false` when the claim was lost (taken over or released).
   */
  renew(ref: ClaimRef, leaseMs: number): Promise<boolean>

  /**
   * Stores the response and marks the record `completed`, if and only if it is `in_progress`
   * with `ref.token` (compare-and-set: a request that lost its lease can never overwrite the
   * response of the request that took over). Keeps the record's expiry.
   *
   * With `tx`, the write joins that transaction and waiters are woken after it commits.
   * Resolves `false` when the token no longer owns the record.
   */
  complete(ref: ClaimRef, response: StoredResponse, tx?: Tx): Promise<boolean>

  /**
   * Deletes an `in_progress` record if and only if it carries `ref.token`, so that the next
   * request with the key claims it anew. Resolves `false` when the claim was already lost.
   */
  release(ref: ClaimRef): Promise<boolean>

  /**
   * Registers `listener` to be called each time the record at (scope, key) is completed or
   * released by anyone the store can hear from, until unsubscribed. Returns the unsubscribe function.
   * Optional: without it, waiters fall back to polling.
   */
  onSettled?(scope: string, key: string, listener: () => void): () => void

  /**
   * Deletes up to `limit` records whose expiry has passed, skipping any `in_progress` record
   * whose lease is still live. Resolves the number deleted.
   */
  purgeExpired(limit: number): Promise<number>
}
