/**
 * The engine as a state machine, against a small model written from the contract: generated
 * sequences of claims, completions (stored or not), releases, concurrent duplicates, expiry,
 * real store faults and the death of a claim's holder, run on every store of MODEL_STORES. After
 * every step the engine's answer and the store's count of claims in progress must be what the
 * model says.
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type {
  ActiveClaim,
  IdempotencyEngine,
  ManualClock,
  Store,
  StoreTransaction,
} from '@ticksupply/idempotency'
import {
  FingerprintMismatchError,
  LeaseLostError,
  RequestInProgressError,
  StoreUnavailableError,
  createIdempotencyEngine,
  createManualClock,
  isStorableStatus,
} from '@ticksupply/idempotency'
import type { ModelSubject } from './model-stores.js'
import { MODEL_LEASE_MS, MODEL_STORES } from './model-stores.js'

const TTL_MS = 600_000
const SCOPES = ['acct_a', 'acct_b'] as const
const KEYS = [randomUUID(), randomUUID(), randomUUID()] as const
const BODIES = ['{"n":1}', '{"n":2}'] as const

type Step =
  | { readonly kind: 'begin'; readonly record: number; readonly body: number }
  | {
      readonly kind: 'duplicates'
      readonly record: number
      readonly body: number
      readonly count: number
    }
  | { readonly kind: 'finish'; readonly claim: number; readonly status: number }
  | { readonly kind: 'release'; readonly claim: number }
  | { readonly kind: 'advance'; readonly ms: number }
  | {
      readonly kind: 'fault'
      readonly during: 'begin' | 'finish'
      readonly record: number
      readonly body: number
      readonly claim: number
      readonly status: number
    }
  | { readonly kind: 'holder_dies' }

const record = fc.nat({ max: SCOPES.length * KEYS.length - 1 })
const body = fc.nat({ max: BODIES.length - 1 })
const claimIndex = fc.nat({ max: 7 })
const status = fc.constantFrom(200, 201, 204, 404, 409, 408, 500, 503)

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('begin' as const), record, body }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('duplicates' as const),
      record,
      body,
      count: fc.integer({ min: 2, max: 4 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('finish' as const), claim: claimIndex, status }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), claim: claimIndex }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.constantFrom(1_000, TTL_MS / 2, TTL_MS + 1),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('fault' as const),
      during: fc.constantFrom('begin' as const, 'finish' as const),
      record,
      body,
      claim: claimIndex,
      status,
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'holder_dies' as const }) },
)

/**
 * A record as the contract sees it. `generation`: the holder's life (see holder_dies);
 * `holder`: the claim that holds it; `leaseEndsAt`: where claims are leases, when it lapses
 * (nothing renews it while the test's clock jumps).
 */
type ModelRecord =
  | {
      readonly state: 'held'
      readonly body: number
      readonly expiresAt: number
      readonly generation: number
      readonly holder: number
      readonly leaseEndsAt: number
    }
  | {
      readonly state: 'completed'
      readonly body: number
      readonly expiresAt: number
      readonly status: number
      readonly text: string
    }

type Expected = 'claimed' | 'took_over' | 'replay' | 'mismatch' | 'in_progress' | 'unavailable'

interface Held {
  readonly id: number
  readonly record: number
  readonly claim: ActiveClaim<StoreTransaction>
}

/** Whether the record's holder still lives: its process (generation) and, for leases, its lease. */
function isLive(found: ModelRecord | undefined, now: number, generation: number): boolean {
  return found?.state === 'held' && found.generation === generation && found.leaseEndsAt > now
}

/** The contract's table ("What a repeated key gets", "Expiry", "Crash safety"). */
function expectedClaim(
  found: ModelRecord | undefined,
  bodyIndex: number,
  now: number,
  generation: number,
): Expected {
  if (found === undefined) return 'claimed'
  const live = isLive(found, now, generation)
  if (found.expiresAt <= now && !live) return 'claimed'
  if (found.body !== bodyIndex) return 'mismatch'
  if (found.state === 'completed') return 'replay'
  return live ? 'in_progress' : 'took_over'
}

class Machine {
  readonly records = new Map<number, ModelRecord>()
  held: Held[] = []
  generation = 0
  now: number
  completions = 0
  claims = 0
  engine: IdempotencyEngine<StoreTransaction>
  readonly log: string[] = []

  readonly subject: ModelSubject
  readonly clock: ManualClock

  constructor(subject: ModelSubject, clock: ManualClock) {
    this.subject = subject
    this.clock = clock
    this.now = clock.now()
    this.engine = this.engineOn(subject.store)
  }

  engineOn(store: Store<StoreTransaction>): IdempotencyEngine<StoreTransaction> {
    return createIdempotencyEngine({
      store,
      clock: this.clock,
      ttlMs: TTL_MS,
      leaseMs: MODEL_LEASE_MS,
      waitMs: 0,
    })
  }

  request(index: number, bodyIndex: number) {
    return {
      scope: SCOPES[index % SCOPES.length] ?? '',
      key: KEYS[Math.floor(index / SCOPES.length)] ?? '',
      method: 'POST',
      pathWithQuery: '/v1/things',
      body: Buffer.from(BODIES[bodyIndex] ?? ''),
    }
  }

  /** One begin, as the engine answers it. */
  async begin(
    index: number,
    bodyIndex: number,
  ): Promise<{ outcome: Expected; claim?: ActiveClaim<StoreTransaction>; text?: string }> {
    try {
      const begun = await this.engine.begin(this.request(index, bodyIndex))
      if (begun.kind === 'replay')
        return { outcome: 'replay', text: Buffer.from(begun.response.body).toString() }
      return { outcome: 'claimed', claim: begun.claim }
    } catch (error) {
      if (error instanceof FingerprintMismatchError) return { outcome: 'mismatch' }
      if (error instanceof RequestInProgressError) return { outcome: 'in_progress' }
      if (error instanceof StoreUnavailableError) return { outcome: 'unavailable' }
      throw error
    }
  }

  /** Applies a claim the model expected: the record is now held by this generation. */
  claimed(
    index: number,
    bodyIndex: number,
    expected: Expected,
    claim: ActiveClaim<StoreTransaction>,
  ) {
    const found = this.records.get(index)
    const expiresAt =
      expected === 'took_over' && found !== undefined ? found.expiresAt : this.now + TTL_MS
    const id = ++this.claims
    this.records.set(index, {
      state: 'held',
      body: bodyIndex,
      expiresAt,
      generation: this.generation,
      holder: id,
      leaseEndsAt: this.now + (this.subject.claimsLapseAfterMs ?? Infinity),
    })
    this.held.push({ id, record: index, claim })
  }

  /** Whether `held` still holds its record (not released, completed or taken over). */
  owns(held: Held): boolean {
    const found = this.records.get(held.record)
    return found?.state === 'held' && found.holder === held.id
  }

  async run(s: Step): Promise<void> {
    this.log.push(JSON.stringify(s))
    switch (s.kind) {
      case 'begin': {
        const expected = expectedClaim(
          this.records.get(s.record),
          s.body,
          this.now,
          this.generation,
        )
        const got = await this.begin(s.record, s.body)
        expect(
          got.outcome === 'claimed' && expected === 'took_over' ? 'took_over' : got.outcome,
          this.trace(),
        ).toBe(expected)
        if (got.claim !== undefined) this.claimed(s.record, s.body, expected, got.claim)
        if (got.outcome === 'replay') {
          const found = this.records.get(s.record)
          expect(found?.state === 'completed' ? found.text : undefined, this.trace()).toBe(got.text)
        }
        return
      }
      case 'duplicates': {
        const expected = expectedClaim(
          this.records.get(s.record),
          s.body,
          this.now,
          this.generation,
        )
        const all = await Promise.all(
          Array.from({ length: s.count }, () => this.begin(s.record, s.body)),
        )
        const outcomes = all.map((one) => one.outcome).sort()
        const claims = all.filter((one) => one.claim !== undefined)
        if (expected === 'claimed' || expected === 'took_over') {
          // Exactly one wins; the others find it in progress.
          expect(outcomes, this.trace()).toEqual([
            'claimed',
            ...Array<Expected>(s.count - 1).fill('in_progress'),
          ])
          const winner = claims[0]?.claim
          if (winner !== undefined) this.claimed(s.record, s.body, expected, winner)
        } else {
          expect(outcomes, this.trace()).toEqual(Array<Expected>(s.count).fill(expected))
        }
        return
      }
      case 'finish':
      case 'release': {
        const held = this.held[s.claim % Math.max(1, this.held.length)]
        if (held === undefined) return
        this.held = this.held.filter((one) => one !== held)
        const storing = s.kind === 'finish' && isStorableStatus(s.status)
        const text = `{"completion":${String(++this.completions)}}`
        const found = this.records.get(held.record)
        const owns = this.owns(held)
        // A completion is a compare-and-set on the claim's token; a lapsed lease still
        // completes while nobody took the key over and the record has not expired.
        const completes =
          owns &&
          found !== undefined &&
          (found.expiresAt > this.now || isLive(found, this.now, this.generation))
        const settled =
          s.kind === 'finish'
            ? held.claim.finish(this.response(s.status, text))
            : held.claim.release()
        const outcome = await settled.then(
          () => 'done',
          (reason: unknown) => (reason instanceof LeaseLostError ? 'lease_lost' : reason),
        )
        expect(outcome, this.trace()).toBe(storing && !completes ? 'lease_lost' : 'done')
        if (storing && completes && found.state === 'held') {
          this.records.set(held.record, {
            state: 'completed',
            body: found.body,
            expiresAt: found.expiresAt,
            status: s.status,
            text,
          })
        } else if (!storing && owns) {
          // A release by token gives the key back (a dead record is deleted all the same).
          this.records.delete(held.record)
        }
        return
      }
      case 'advance':
        this.clock.advance(s.ms)
        this.now += s.ms
        return
      case 'fault':
        await this.underFault(s)
        return
      case 'holder_dies': {
        if (this.held.length === 0) return
        const { store, advancedMs } = await this.subject.holderDies.run()
        this.now += advancedMs
        this.generation++
        this.held = []
        if (this.subject.holderDies.after === 'free') {
          for (const [index, found] of this.records)
            if (found.state === 'held') this.records.delete(index)
        }
        this.engine = this.engineOn(store)
        return
      }
    }
  }

  async underFault(s: Extract<Step, { kind: 'fault' }>): Promise<void> {
    const { breaks } = this.subject.fault
    if (s.during === 'begin') {
      const normal = expectedClaim(this.records.get(s.record), s.body, this.now, this.generation)
      const heal = await this.subject.fault.inject()
      let got: Awaited<ReturnType<Machine['begin']>>
      try {
        got = await this.begin(s.record, s.body)
      } finally {
        await heal()
      }
      const outcome =
        got.outcome === 'claimed' && normal === 'took_over' ? 'took_over' : got.outcome
      if (!breaks.claim) {
        expect(outcome, this.trace()).toBe(normal)
      } else if (normal === 'claimed' || normal === 'took_over') {
        // No claim is granted without the store.
        expect(outcome, this.trace()).toBe('unavailable')
      } else {
        // What the store's memory knows (a completed record in its cache, a claim this instance
        // holds) may still be answered; anything else fails closed.
        expect([normal, 'unavailable'], this.trace()).toContain(outcome)
      }
      if (got.claim !== undefined) this.claimed(s.record, s.body, normal, got.claim)
      if (got.outcome === 'replay') {
        const found = this.records.get(s.record)
        expect(found?.state === 'completed' ? found.text : undefined, this.trace()).toBe(got.text)
      }
      return
    }
    const held = this.held[s.claim % Math.max(1, this.held.length)]
    if (held === undefined) return
    this.held = this.held.filter((one) => one !== held)
    const owns = this.owns(held)
    const fails = isStorableStatus(s.status) ? breaks.complete : breaks.release
    const heal = await this.subject.fault.inject()
    let failed: boolean
    try {
      failed = await held.claim.finish(this.response(s.status, '{"never":"stored"}')).then(
        () => false,
        (error: unknown) => {
          if (error instanceof StoreUnavailableError) return true
          throw error
        },
      )
    } finally {
      await heal()
    }
    expect(failed, this.trace()).toBe(fails)
    // Nothing was stored, and the key is given back if the claim still held it: at once, or by
    // the engine in the background once the store is back.
    await this.backgroundSettled()
    if (owns) this.records.delete(held.record)
  }

  response(statusCode: number, text: string) {
    return {
      status: statusCode,
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(text),
      requestId: 'req_model',
    }
  }

  async backgroundSettled(): Promise<void> {
    for (let attempt = 0; attempt < 200 && this.engine.pendingRetries > 0; attempt++)
      await sleep(25)
    expect(this.engine.pendingRetries, this.trace()).toBe(0)
  }

  /**
   * The store's own count of claims in progress, where it keeps one, matches the model's: the
   * records held by a claim of this holder (one per record, even after a takeover).
   */
  checkInProgress(): void {
    const count = (this.subject.store as { inProgress?: unknown }).inProgress
    if (typeof count !== 'number') return
    expect(count, this.trace()).toBe(this.held.filter((held) => this.owns(held)).length)
  }

  trace(): string {
    return `after steps:\n${this.log.join('\n')}`
  }
}

describe.each(MODEL_STORES)('the engine against its model, on $name', (row) => {
  it('answers every generated sequence as the model does', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 10, maxLength: 40, size: '+1' }),
        async (steps) => {
          const clock = createManualClock()
          const subject = await row.open(clock)
          try {
            const machine = new Machine(subject, clock)
            for (const s of steps) {
              await machine.run(s)
              machine.checkInProgress()
            }
            // Every claim still held ends; the store has none left.
            for (const held of machine.held.splice(0)) await held.claim.release()
            machine.checkInProgress()
          } finally {
            await subject.close()
          }
        },
      ),
      { numRuns: row.runs },
    )
  })
})
