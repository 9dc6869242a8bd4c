import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { BackgroundRetrier } from './background-retry.js'
import { createBackgroundRetrier } from './background-retry.js'
import {
  FingerprintMismatchError,
  LeaseLostError,
  RequestInProgressError,
  StoreUnavailableError,
  WaitAbortedError,
} from './errors.js'
import { BodyFingerprint, fingerprintRequest } from './fingerprint.js'
import type { IdempotencyEvent, IdempotencyOptions, ResolvedIdempotencyOptions } from './options.js'
import { resolveIdempotencyOptions } from './options.js'
import type { StoredResponse } from './record.js'
import { isStorableStatus, storableResponse } from './record.js'
import { checkScope } from './scope.js'
import type { ClaimOutcome, ClaimRef, Store, StoreTransaction } from './store.js'
import { WakeUps, nextPollDelay, untilDeadline } from './wait.js'

/** What an adapter hands the engine: a framework-neutral view of one keyed request. */
export interface IdempotentRequest {
  /**
   * Whose keys these are (the account). Never shared between tenants. At most 512 characters,
   * without NUL or unpaired surrogates (anything else is a `TypeError`: see `checkScope`).
   */
  readonly scope: string
  /** The canonical key, from {@link parseIdempotencyKeyHeader}. */
  readonly key: string
  readonly method: string
  /** The request target exactly as sent: path and query string. */
  readonly pathWithQuery: string
  /**
   * The raw body bytes, before any parsing; or, from an adapter that saw them stream by, a
   * {@link BodyFingerprint} of this method and path fed with them.
   */
  readonly body: Uint8Array | BodyFingerprint
  /**
   * Aborts when the client goes away: a waiting duplicate stops waiting, and a claim it wins
   * after that is given back unused. Read only when the request has to wait, so an adapter may
   * define it as a getter and build it lazily.
   */
  readonly signal?: AbortSignal
}

export type BeginOutcome<Tx extends StoreTransaction> =
  | { readonly kind: 'replay'; readonly response: StoredResponse }
  | { readonly kind: 'claimed'; readonly claim: ActiveClaim<Tx> }

/**
 * - `active`: held; the operation runs.
 * - `committing`: completed inside a transaction that has not committed yet.
 * - `completed`, `released`: settled by this request.
 * - `lost`: another request took the key over, or the store can no longer vouch for the
 *   claim; the operation must not commit.
 * - `abandoned`: a write to the store failed; the engine gives the key back in the background.
 */
export type ClaimState = 'active' | 'committing' | 'completed' | 'released' | 'lost' | 'abandoned'

/**
 * The key, held by the request that claimed it. If the claim is lost,
 * {@link ActiveClaim.signal} aborts with a {@link LeaseLostError} and the operation must not
 * commit.
 */
export interface ActiveClaim<Tx extends StoreTransaction> {
  readonly scope: string
  readonly key: string
  readonly signal: AbortSignal
  readonly state: ClaimState
  /** True once nothing is left to do for the claim: completed, released, lost or abandoned. */
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
   *
   * @throws {LeaseLostError} when the claim was lost: the response must not be sent as the
   *   operation's answer (another request owns the key).
   * @throws {StoreUnavailableError}
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
  /** Store writes that failed and are being retried in the background (releases). */
  readonly pendingRetries: number
}

/** What claims share of their engine. */
interface ClaimContext<Tx extends StoreTransaction> {
  readonly store: Store<Tx>
  readonly emit: (event: IdempotencyEvent) => void
  readonly retrier: BackgroundRetrier
  readonly leases: LeaseKeeper | undefined
  readonly leaseMs: number
}

const NEVER_ABORTED = new AbortController().signal
// The events without a payload, made once: most requests emit two of them.
const CLAIMED: IdempotencyEvent = { type: 'claimed', takeover: false }
const TAKEN_OVER: IdempotencyEvent = { type: 'claimed', takeover: true }
const REPLAYED: IdempotencyEvent = { type: 'replayed' }
const COMPLETED: IdempotencyEvent = { type: 'completed' }
const RELEASED: IdempotencyEvent = { type: 'released' }
const WOKEN: IdempotencyEvent = { type: 'woken' }
const MISMATCHED: IdempotencyEvent = { type: 'mismatch' }
const STILL_IN_PROGRESS: IdempotencyEvent = { type: 'in_progress' }
const noop = () => undefined

export function createIdempotencyEngine<Tx extends StoreTransaction = never>(
  options: IdempotencyOptions<Tx>,
): IdempotencyEngine<Tx> {
  const resolved = resolveIdempotencyOptions(options)
  const { store, leaseMs, ttlMs, waitMs, initialPollMs, emit } = resolved
  const retrier = createBackgroundRetrier({
    onError: (error) => {
      emit({ type: 'store_error', error })
    },
  })
  const context: ClaimContext<Tx> = {
    store,
    emit,
    retrier,
    leases: store.renew === undefined ? undefined : createLeaseKeeper(store, leaseMs, emit),
    leaseMs,
  }

  async function claimOnce(
    request: IdempotentRequest,
    fingerprint: string,
    token: string,
  ): Promise<ClaimOutcome> {
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
      emit({ type: 'store_error', error })
      throw new StoreUnavailableError({ cause: error })
    }
  }

  /** When a claim is sent, for a lease's own clock: only where claims are leases. */
  const leaseClock = (): number => (context.leases === undefined ? 0 : performance.now())

  function settleFirst(
    request: IdempotentRequest,
    outcome: ClaimOutcome,
    token: string,
    sentAt: number,
    waitStartedAt?: number,
  ): BeginOutcome<Tx> | undefined {
    switch (outcome.kind) {
      case 'claimed':
        emit(outcome.takeover ? TAKEN_OVER : CLAIMED)
        if (waitStartedAt !== undefined) emitWaited('claimed', waitStartedAt)
        return {
          kind: 'claimed',
          claim: new Claim(context, request, token, outcome, sentAt),
        }
      case 'replay':
        emit(REPLAYED)
        if (waitStartedAt !== undefined) emitWaited('replayed', waitStartedAt)
        return { kind: 'replay', response: outcome.response }
      case 'mismatch':
        emit(MISMATCHED)
        throw new FingerprintMismatchError()
      case 'in_progress':
        return undefined
    }
  }

  function emitWaited(
    outcome: 'replayed' | 'claimed' | 'timed_out' | 'aborted',
    startedAt: number,
  ): void {
    emit({ type: 'waited', outcome, waitedMs: performance.now() - startedAt })
  }

  async function begin(request: IdempotentRequest): Promise<BeginOutcome<Tx>> {
    checkScope(request.scope)
    const fingerprint = fingerprintOf(request)
    const token = randomUUID()
    // The common case, one claim and nothing else: no timer, no listener, no signal.
    const sentAt = leaseClock()
    const first = settleFirst(request, await claimOnce(request, fingerprint, token), token, sentAt)
    if (first !== undefined) return first
    if (waitMs === 0) {
      emit(STILL_IN_PROGRESS)
      throw new RequestInProgressError()
    }
    return waitForOriginal(request, fingerprint)
  }

  // A store whose claims live in this process's memory hears every completion and release
  // itself: its waiters sleep until a notice (or the deadline) and never poll. A shared store
  // is polled too, for what it cannot announce (a dead holder's claim ending).
  const noticesAreComplete = store.claimLifetime === 'process' && store.onSettled !== undefined

  /**
   * The original still runs: wait for its completion (woken by the store, or by the poll) and
   * look again, until the budget runs out.
   */
  async function waitForOriginal(
    request: IdempotentRequest,
    fingerprint: string,
  ): Promise<BeginOutcome<Tx>> {
    const startedAt = performance.now()
    const deadline = startedAt + waitMs
    const signal = request.signal
    const wakeUps = new WakeUps(
      signal,
      store.onSettled === undefined
        ? undefined
        : (listener) => store.onSettled?.(request.scope, request.key, listener) ?? noop,
      () => {
        emit(WOKEN)
      },
    )
    let attempt = 0
    try {
      // Look again at once: a completion that landed between the first claim and the
      // subscription would otherwise go unnoticed until the next poll.
      for (;;) {
        const noticesBeforeClaim = wakeUps.notices
        const token = randomUUID()
        const sentAt = leaseClock()
        const outcome = await claimOnce(request, fingerprint, token)
        if (outcome.kind === 'claimed' && signal?.aborted === true) {
          // The client left while the claim was in flight: nobody would read the answer, and
          // a retry must find the key free, so the claim goes back unused.
          await giveBackUnused(context, request, token)
          emitWaited('aborted', startedAt)
          throw new WaitAbortedError()
        }
        const done = settleFirst(request, outcome, token, sentAt, startedAt)
        if (done !== undefined) return done
        if (wakeUps.notices !== noticesBeforeClaim) continue
        const remainingMs = deadline - performance.now()
        if (remainingMs <= 0) {
          emitWaited('timed_out', startedAt)
          emit(STILL_IN_PROGRESS)
          throw new RequestInProgressError()
        }
        const result = await wakeUps.sleep(
          noticesAreComplete
            ? untilDeadline(attempt++, waitMs, remainingMs)
            : nextPollDelay(attempt++, initialPollMs, remainingMs),
        )
        if (result === 'aborted') {
          emitWaited('aborted', startedAt)
          throw new WaitAbortedError()
        }
      }
    } finally {
      wakeUps.dispose()
    }
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
        // A release that fails is retried in the background; the operation's error wins.
        await claim.release().catch(() => undefined)
        throw error
      }
      await claim.finish(response)
      return { response, replayed: false }
    },
    get pendingRetries() {
      return retrier.pending
    },
  }
}

function fingerprintOf(request: IdempotentRequest): string {
  const { body } = request
  if (!(body instanceof BodyFingerprint)) {
    return fingerprintRequest(request.method, request.pathWithQuery, body)
  }
  if (body.method !== request.method || body.pathWithQuery !== request.pathWithQuery) {
    // Another request's fingerprint would let one key's replay answer a different request.
    throw new TypeError('the body fingerprint was made for another method or path')
  }
  return body.digest()
}

/** Releases a claim nobody will use; a release the store refuses is retried in the background. */
async function giveBackUnused<Tx extends StoreTransaction>(
  context: ClaimContext<Tx>,
  request: IdempotentRequest,
  token: string,
): Promise<void> {
  const ref: ClaimRef = { scope: request.scope, key: request.key, token }
  try {
    await context.store.release(ref)
  } catch (error) {
    context.emit({ type: 'store_error', error })
    context.retrier.schedule(() => context.store.release(ref))
  }
}

class Claim<Tx extends StoreTransaction> implements ActiveClaim<Tx> {
  readonly scope: string
  readonly key: string
  #state: ClaimState = 'active'
  readonly #context: ClaimContext<Tx>
  /** The claim as the store knows it: one object for every write of this claim. */
  readonly ref: ClaimRef
  /** The store's signal for all its claims, if it has one. */
  readonly #storeSignal: AbortSignal | undefined
  /** Only for claims that can be lost on their own (leases), or once read after a loss. */
  #controller: AbortController | undefined
  /**
   * Lost without the store saying so (a renewal failed, or the lease ran out on this process's
   * clock before a renewal answered): the record may still carry this claim's token.
   */
  #mayStillHold = false
  /**
   * Until when the lease is surely held (`performance.now()`): from when the claim or the
   * latest renewal that succeeded was sent. Past it, another request may have taken the key,
   * whether or not a renewal has said so yet (the event loop may have stalled).
   */
  #heldUntil: number | undefined

  /** The store's check that it still vouches for its claims, if it has one. */
  readonly #vouches: (() => boolean) | undefined

  constructor(
    context: ClaimContext<Tx>,
    { scope, key }: { readonly scope: string; readonly key: string },
    token: string,
    outcome: { readonly lost?: AbortSignal; readonly vouches?: () => boolean },
    sentAt: number,
  ) {
    this.#context = context
    this.scope = scope
    this.key = key
    this.ref = { scope, key, token }
    this.#storeSignal = outcome.lost
    this.#vouches = outcome.vouches
    if (context.leases !== undefined) {
      this.#controller = new AbortController()
      this.#heldUntil = sentAt + context.leaseMs
      context.leases.add(this)
    }
  }

  get state(): ClaimState {
    if (this.#state === 'active') {
      if (this.#storeSignal?.aborted === true) this.lose()
      else this.#checkLease()
    }
    return this.#state
  }

  /**
   * Loses a claim whose lease ran out on this process's clock, or whose store no longer vouches
   * for it, before a timer has said so.
   */
  #checkLease(): void {
    if (this.#heldUntil !== undefined && performance.now() >= this.#heldUntil) {
      this.lose(new Error('the lease ran out before a renewal was answered'))
    } else if (this.#vouches?.() === false) {
      this.lose(new Error('the store stopped vouching for its claims before it said so'))
    }
  }

  /** A renewal sent at `sentAt` succeeded: the lease is held until a lease after it. */
  renewed(sentAt: number): void {
    if (this.#heldUntil !== undefined) {
      this.#heldUntil = Math.max(this.#heldUntil, sentAt + this.#context.leaseMs)
    }
  }

  get settled(): boolean {
    const state = this.state
    return state !== 'active' && state !== 'committing'
  }

  get signal(): AbortSignal {
    if (this.#controller !== undefined) {
      // A lease that ran out while the event loop stood still aborts as it is read.
      if (this.#state === 'active') this.#checkLease()
      return this.#controller.signal
    }
    if (this.#state === 'active') this.#checkLease()
    if (this.#state === 'lost') return AbortSignal.abort(new LeaseLostError())
    return this.#storeSignal ?? NEVER_ABORTED
  }

  /** The claim is no longer ours: abort the operation, stop renewing. */
  lose(cause?: unknown): void {
    if (this.#state !== 'active' && this.#state !== 'committing') return
    this.#state = 'lost'
    this.#mayStillHold = cause !== undefined
    this.#context.leases?.remove(this)
    this.#context.emit({ type: 'lease_lost' })
    this.#controller?.abort(new LeaseLostError(cause === undefined ? undefined : { cause }))
  }

  #settle(next: 'completed' | 'released'): void {
    this.#state = next
    this.#context.leases?.remove(this)
    this.#context.emit(next === 'completed' ? COMPLETED : RELEASED)
  }

  /**
   * A write the store failed: the claim stops renewing at once (so a lease lapses) and the
   * key is given back in the background, so that it is not stranded once the store recovers.
   */
  #abandon(error: unknown): StoreUnavailableError {
    const { emit, leases, retrier, store } = this.#context
    emit({ type: 'store_error', error })
    if (this.#state === 'active' || this.#state === 'committing') {
      this.#state = 'abandoned'
      leases?.remove(this)
      const ref = this.ref
      retrier.schedule(() => store.release(ref))
    }
    return new StoreUnavailableError({ cause: error })
  }

  async complete(given: StoredResponse, tx?: Tx): Promise<void> {
    // A record every retry would read back: a response no framework could send, or that the
    // store cannot read back, is the caller's TypeError, before anything is written.
    const response = storableResponse(given)
    if (this.state === 'lost') throw new LeaseLostError()
    if (this.#state !== 'active' && this.#state !== 'committing') return
    let owned: boolean
    try {
      owned = await this.#context.store.complete(this.ref, response, tx)
    } catch (error) {
      // Inside a transaction the caller rolls back; the key is given back either way.
      throw this.#abandon(error)
    }
    if (!owned) {
      this.lose()
      throw new LeaseLostError()
    }
    if (tx === undefined) {
      this.#settle('completed')
      return
    }
    // Until the transaction commits, a rollback can still undo the completion: the claim stays
    // held so that finish() can release it after a rollback.
    this.#state = 'committing'
    tx.afterCommit(() => {
      if (this.#state === 'committing') this.#settle('completed')
    })
  }

  /**
   * A claim lost to a failed renewal may still be ours in the store, which could not be
   * reached: once the request is done with it, give it back by token (a no-op if another
   * request took it meanwhile), so that the retry need not wait out the lease.
   */
  #releaseAfterLoss(): void {
    if (!this.#mayStillHold) return
    this.#mayStillHold = false
    const { retrier, store } = this.#context
    const ref = this.ref
    store.release(ref).catch(() => {
      retrier.schedule(() => store.release(ref))
    })
  }

  /**
   * The operation ran to its answer while the claim could not be shown to be held, and its
   * effects (outside the store) may have committed. Storing the answer by token is what keeps
   * a retry from running it again: a completion lands only on a record that still carries this
   * claim's token, so it can never overwrite a request that took the key over.
   */
  async #completeAfterLoss(response: StoredResponse): Promise<void> {
    this.#mayStillHold = false
    const { emit, retrier, store } = this.#context
    const ref = this.ref
    let owned: boolean
    try {
      owned = await store.complete(ref, response)
    } catch (error) {
      emit({ type: 'store_error', error })
      retrier.schedule(() => store.release(ref))
      throw new LeaseLostError({ cause: error })
    }
    if (!owned) throw new LeaseLostError()
    this.#state = 'completed'
    emit(COMPLETED)
  }

  async release(): Promise<void> {
    if (this.state === 'lost') this.#releaseAfterLoss()
    if (this.#state !== 'active' && this.#state !== 'committing') return
    let owned: boolean
    try {
      owned = await this.#context.store.release(this.ref)
    } catch (error) {
      throw this.#abandon(error)
    }
    if (owned) this.#settle('released')
    else this.lose()
  }

  async finish(given: StoredResponse): Promise<void> {
    let response: StoredResponse
    try {
      response = storableResponse(given)
    } catch (error) {
      // No response to store: the key goes back, as for an operation that threw, and the
      // caller hears why.
      if (this.state === 'lost') this.#releaseAfterLoss()
      else await this.release().catch(() => undefined)
      throw error
    }
    if (this.state === 'lost') {
      if (this.#mayStillHold && isStorableStatus(response.status)) {
        await this.#completeAfterLoss(response)
        return
      }
      this.#releaseAfterLoss()
      throw new LeaseLostError()
    }
    if (this.settled) return
    if (isStorableStatus(response.status)) await this.complete(response)
    else await this.release()
  }
}

/**
 * Renews the leases of every live claim, for stores whose claims are leases: one timer for
 * the whole engine (not one per claim), running only while some claim is held. Every claim is
 * renewed at least every third of the lease: two renewals can fail or run late before
 * another request may take the key over.
 */
interface LeaseKeeper {
  add(claim: Claim<StoreTransaction>): void
  remove(claim: Claim<StoreTransaction>): void
}

function createLeaseKeeper<Tx extends StoreTransaction>(
  store: Store<Tx>,
  leaseMs: number,
  emit: (event: IdempotencyEvent) => void,
): LeaseKeeper {
  const renew = store.renew?.bind(store)
  if (renew === undefined) throw new TypeError('a lease keeper needs a store that renews')
  const active = new Set<Claim<StoreTransaction>>()
  const inFlight = new WeakSet<Claim<StoreTransaction>>()
  let timer: ReturnType<typeof setInterval> | undefined

  const tick = () => {
    for (const claim of active) {
      if (inFlight.has(claim)) continue
      inFlight.add(claim)
      const sentAt = performance.now()
      renew(claim.ref, leaseMs).then(
        (owned) => {
          inFlight.delete(claim)
          if (owned) claim.renewed(sentAt)
          else claim.lose()
        },
        (error: unknown) => {
          inFlight.delete(claim)
          emit({ type: 'store_error', error })
          claim.lose(error)
        },
      )
    }
  }
  return {
    add(claim) {
      active.add(claim)
      if (timer === undefined) {
        timer = setInterval(tick, Math.max(1, Math.floor(leaseMs / 3)))
        timer.unref()
      }
    },
    remove(claim) {
      active.delete(claim)
      if (active.size === 0 && timer !== undefined) {
        clearInterval(timer)
        timer = undefined
      }
    },
  }
}
