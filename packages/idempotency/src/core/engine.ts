import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import {
  FingerprintMismatchError,
  LeaseLostError,
  RequestInProgressError,
  StoreUnavailableError,
  WaitAbortedError,
} from './errors.js'
import { fingerprintRequest } from './fingerprint.js'
import type { IdempotencyOptions, ResolvedIdempotencyOptions } from './options.js'
import { resolveIdempotencyOptions } from './options.js'
import type { StoredResponse } from './record.js'
import { isStorableStatus } from './record.js'
import type { ClaimOutcome, ClaimRef, StoreTransaction } from './store.js'
import { nextPollDelay, waitForWake } from './wait.js'

/** What an adapter hands the engine: a framework-neutral view of one keyed request. */
export interface IdempotentRequest {
  /** Whose keys these are (the account). Never shared between tenants. */
  readonly scope: string
  /** The canonical key, from {@link parseIdempotencyKeyHeader}. */
  readonly key: string
  readonly method: string
  /** The request target exactly as sent: path and query string. */
  readonly pathWithQuery: string
  /** The raw body bytes, before any parsing. */
  readonly body: Uint8Array
  /** Aborts when the client goes away: a waiting duplicate stops waiting. */
  readonly signal?: AbortSignal
}

export type BeginOutcome<Tx extends StoreTransaction> =
  | { readonly kind: 'replay'; readonly response: StoredResponse }
  | { readonly kind: 'claimed'; readonly claim: ActiveClaim<Tx> }

export type ClaimState = 'active' | 'committing' | 'completed' | 'released' | 'lost'

/**
 * The key, held by the request that claimed it. A heartbeat renews the lease until the claim is
 * completed or released; if a renewal fails, {@link ActiveClaim.signal} aborts with a
 * {@link LeaseLostError} and the operation must not commit.
 */
export interface ActiveClaim<Tx extends StoreTransaction> {
  readonly scope: string
  readonly key: string
  readonly signal: AbortSignal
  readonly state: ClaimState
  /** True once a completion or a release has been recorded (or the claim was lost). */
  readonly settled: boolean
  /**
   * Stores `response` for replay. With `tx`, the completion joins the operation's transaction:
   * both commit or neither does, and the claim counts as completed only after the commit.
   *
   * @throws {LeaseLostError} when the key is no longer this claim's: abort the transaction.
   * @throws {StoreUnavailableError}
   */
  complete(response: StoredResponse, tx?: Tx): Promise<void>
  /** Gives the key back, so that a retry runs the operation again. */
  release(): Promise<void>
  /**
   * Ends the claim for the response the request is answering with: completes it when the
   * status is storable (below 500 and not 408), releases it otherwise. Does nothing when the
   * claim is already settled (e.g. completed inside the operation's transaction).
   */
  finish(response: StoredResponse): Promise<void>
}

export interface IdempotencyEngine<Tx extends StoreTransaction = never> {
  readonly options: ResolvedIdempotencyOptions<Tx>
  /**
   * Claims the request's key, or replays, or waits for the original, as the contract says.
   *
   * @throws {FingerprintMismatchError} the key was used for another request.
   * @throws {RequestInProgressError} the original still runs after the wait.
   * @throws {WaitAbortedError} the request's signal aborted while it waited.
   * @throws {StoreUnavailableError}
   */
  begin(request: IdempotentRequest): Promise<BeginOutcome<Tx>>
  /**
   * `begin`, then `operation` while the claim is held, then `finish` with its response; a
   * throwing operation releases the key. For adapters whose framework hands back a whole
   * response (fetch-style handlers) and for scripts.
   */
  execute(
    request: IdempotentRequest,
    operation: (claim: ActiveClaim<Tx>) => Promise<StoredResponse>,
  ): Promise<{ readonly response: StoredResponse; readonly replayed: boolean }>
}

export function createIdempotencyEngine<Tx extends StoreTransaction = never>(
  options: IdempotencyOptions<Tx>,
): IdempotencyEngine<Tx> {
  const resolved = resolveIdempotencyOptions(options)
  const { store, leaseMs, ttlMs, waitMs, initialPollMs, onEvent } = resolved

  async function claimOnce(request: IdempotentRequest, fingerprint: string, token: string) {
    try {
      return await store.claim({
        scope: request.scope,
        key: request.key,
        token,
        fingerprint,
        leaseMs,
        ttlMs,
      })
    } catch (error) {
      onEvent({ type: 'store_error', error })
      throw new StoreUnavailableError({ cause: error })
    }
  }

  async function begin(request: IdempotentRequest): Promise<BeginOutcome<Tx>> {
    const fingerprint = fingerprintRequest(request.method, request.pathWithQuery, request.body)
    let deadline = 0
    let attempt = 0
    let unsubscribe: (() => void) | undefined
    // Set by the settle listener; an object, since a closure assigns it between the awaits.
    const settled = { count: 0, wake: undefined as (() => void) | undefined }
    try {
      for (;;) {
        const settledBeforeClaim = settled.count
        const token = randomUUID()
        const outcome: ClaimOutcome = await claimOnce(request, fingerprint, token)
        switch (outcome.kind) {
          case 'claimed':
            onEvent({ type: 'claimed', takeover: outcome.takeover })
            if (unsubscribe !== undefined) onEvent({ type: 'waited', outcome: 'claimed' })
            return { kind: 'claimed', claim: createActiveClaim(request, token) }
          case 'replay':
            onEvent({ type: 'replayed' })
            if (unsubscribe !== undefined) onEvent({ type: 'waited', outcome: 'replayed' })
            return { kind: 'replay', response: outcome.response }
          case 'mismatch':
            onEvent({ type: 'mismatch' })
            throw new FingerprintMismatchError()
          case 'in_progress':
            break
        }
        if (waitMs === 0) throw new RequestInProgressError()
        if (unsubscribe === undefined) {
          // Subscribe first, then look again at once: a completion that landed between the
          // claim above and the subscription would otherwise go unnoticed until the next poll.
          deadline = performance.now() + waitMs
          unsubscribe =
            store.onSettled?.(request.scope, request.key, () => {
              settled.count++
              onEvent({ type: 'woken' })
              settled.wake?.()
            }) ?? (() => undefined)
          continue
        }
        if (settled.count !== settledBeforeClaim) continue
        const remainingMs = deadline - performance.now()
        if (remainingMs <= 0) {
          onEvent({ type: 'waited', outcome: 'timed_out' })
          throw new RequestInProgressError()
        }
        const result = await waitForWake(
          nextPollDelay(attempt++, initialPollMs, remainingMs),
          request.signal,
          (fn) => {
            settled.wake = fn
            return () => {
              settled.wake = undefined
            }
          },
        )
        if (result === 'aborted') {
          onEvent({ type: 'waited', outcome: 'aborted' })
          throw new WaitAbortedError()
        }
      }
    } finally {
      unsubscribe?.()
    }
  }

  function createActiveClaim(request: IdempotentRequest, token: string): ActiveClaim<Tx> {
    const ref: ClaimRef = { scope: request.scope, key: request.key, token }
    const controller = new AbortController()
    let state: ClaimState = 'active'

    const lose = (cause?: unknown) => {
      if (state !== 'active' && state !== 'committing') return
      state = 'lost'
      clearInterval(heartbeat)
      onEvent({ type: 'lease_lost' })
      controller.abort(new LeaseLostError(cause === undefined ? undefined : { cause }))
    }
    // A third of the lease: two renewals can fail or run late before another request may
    // take the key over.
    const heartbeat = setInterval(
      () => {
        store.renew(ref, leaseMs).then(
          (owned) => {
            if (!owned) lose()
          },
          (error: unknown) => {
            onEvent({ type: 'store_error', error })
            lose(error)
          },
        )
      },
      Math.max(1, Math.floor(leaseMs / 3)),
    )
    heartbeat.unref()

    const settle = (next: 'completed' | 'released') => {
      state = next
      clearInterval(heartbeat)
      onEvent({ type: next })
    }

    async function write(action: () => Promise<boolean>): Promise<void> {
      let owned: boolean
      try {
        owned = await action()
      } catch (error) {
        onEvent({ type: 'store_error', error })
        throw new StoreUnavailableError({ cause: error })
      }
      if (!owned) {
        lose()
        throw new LeaseLostError()
      }
    }

    const claim: ActiveClaim<Tx> = {
      scope: request.scope,
      key: request.key,
      signal: controller.signal,
      get state() {
        return state
      },
      get settled() {
        return state === 'completed' || state === 'released' || state === 'lost'
      },
      async complete(response, tx) {
        if (state === 'lost') throw new LeaseLostError()
        if (state !== 'active' && state !== 'committing') return
        if (tx === undefined) {
          await write(() => store.complete(ref, response))
          settle('completed')
          return
        }
        await write(() => store.complete(ref, response, tx))
        // Until the transaction commits, a rollback can still undo the completion: the claim
        // stays live (and renewed) so that finish() can release it after a rollback.
        state = 'committing'
        tx.afterCommit(() => {
          if (state === 'committing') settle('completed')
        })
      },
      async release() {
        if (state !== 'active' && state !== 'committing') return
        await write(() => store.release(ref))
        settle('released')
      },
      async finish(response) {
        if (claim.settled) return
        if (isStorableStatus(response.status)) await claim.complete(response)
        else await claim.release()
      },
    }
    return claim
  }

  return {
    options: resolved,
    begin,
    async execute(request, operation) {
      const outcome = await begin(request)
      if (outcome.kind === 'replay') return { response: outcome.response, replayed: true }
      const { claim } = outcome
      let response: StoredResponse
      try {
        response = await operation(claim)
      } catch (error) {
        // The operation failed without a response: give the key back so a retry runs it again.
        // A release that fails too leaves the key to its lease; the operation's error wins.
        await claim.release().catch(() => undefined)
        throw error
      }
      await claim.finish(response)
      return { response, replayed: false }
    },
  }
}
