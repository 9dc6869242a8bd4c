import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type {
  ClaimOutcome,
  ClaimRequest,
  ManualClock,
  Store,
  StoreTransaction,
  StoredResponse,
} from '@ticksupply/idempotency'
import { createManualClock } from '@ticksupply/idempotency'

export interface StoreUnderTest<Tx extends StoreTransaction> {
  readonly store: Store<Tx>
  /** Moves the store's notion of time (record expiry; and leases, for lease stores). */
  readonly clock: ManualClock
  /**
   * Ends the holder of every claim made so far as its death would (its process is killed, its
   * session ends), and resolves a store of a new holder on the same records. Absent where the
   * death of a holder cannot be staged in-process (then the store's own tests do it with
   * processes).
   */
  readonly killHolder?: () => Promise<Store<Tx>>
  close(): Promise<void>
}

const LEASE_MS = 30_000
const TTL_MS = 86_400_000

/** A claim of a fresh key with a fresh token; for store tests. */
export function request(overrides: Partial<ClaimRequest> = {}): ClaimRequest {
  return {
    scope: 'acct_1',
    key: randomUUID(),
    token: randomUUID(),
    fingerprint: 'f'.repeat(64),
    leaseMs: LEASE_MS,
    ttlMs: TTL_MS,
    ...overrides,
  }
}

/** A stored response with `text` as its body; for store tests. */
export function response(text: string, status = 201): StoredResponse {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', location: '/v1/things/1' },
    body: Buffer.from(text),
    requestId: 'req_0123456789abcdef',
  }
}

/** The outcome's kind, and for a claim whether it was a takeover: what the contract fixes. */
export function outcomeOf(outcome: ClaimOutcome): string {
  return outcome.kind === 'claimed'
    ? `claimed${outcome.takeover ? ' (takeover)' : ''}`
    : outcome.kind
}

const bodyOf = (outcome: ClaimOutcome): string | undefined =>
  outcome.kind === 'replay' ? Buffer.from(outcome.response.body).toString() : undefined

/**
 * The behaviour every Store must show, run against a real backend. `open` gets a manual clock
 * that the store must use for expiry (and for leases, where claims are leases).
 */
export function runStoreContract<Tx extends StoreTransaction>(
  name: string,
  open: (clock: ManualClock) => Promise<StoreUnderTest<Tx>>,
): void {
  describe(`Store contract: ${name}`, () => {
    async function withStore(fn: (subject: StoreUnderTest<Tx>) => Promise<void>): Promise<void> {
      const subject = await open(createManualClock())
      try {
        await fn(subject)
      } finally {
        await subject.close()
      }
    }

    it('claims a new key, then reports it in progress to a second claimant', () =>
      withStore(async ({ store }) => {
        const first = request()
        expect(outcomeOf(await store.claim(first))).toBe('claimed')
        expect(outcomeOf(await store.claim({ ...first, token: randomUUID() }))).toBe('in_progress')
      }))

    it('reports a mismatch for another fingerprint, in progress or completed', () =>
      withStore(async ({ store }) => {
        const first = request()
        await store.claim(first)
        const other = () => ({ ...first, token: randomUUID(), fingerprint: 'e'.repeat(64) })
        expect(outcomeOf(await store.claim(other()))).toBe('mismatch')
        await store.complete(first, response('{"id":1}'))
        expect(outcomeOf(await store.claim(other()))).toBe('mismatch')
      }))

    it('replays a completed record with its status, headers, body bytes and request id', () =>
      withStore(async ({ store }) => {
        const first = request()
        await store.claim(first)
        const stored = response('{"id":"sub_1","note":"é"}', 201)
        expect(await store.complete(first, stored)).toBe(true)
        const again = await store.claim({ ...first, token: randomUUID() })
        expect(again.kind).toBe('replay')
        if (again.kind !== 'replay') return
        expect(again.response.status).toBe(201)
        expect(again.response.headers).toEqual(stored.headers)
        expect(Buffer.from(again.response.body).equals(Buffer.from(stored.body))).toBe(true)
        expect(again.response.requestId).toBe('req_0123456789abcdef')
      }))

    it('keeps scopes apart: the same key in another scope is a new key', () =>
      withStore(async ({ store }) => {
        const first = request({ scope: 'acct_1' })
        await store.claim(first)
        await store.complete(first, response('a'))
        const other = await store.claim({ ...first, scope: 'acct_2', token: randomUUID() })
        expect(outcomeOf(other)).toBe('claimed')
      }))

    it('keeps scopes apart even when scope and key could be spliced differently', () =>
      withStore(async ({ store }) => {
        const key = randomUUID()
        await store.claim(request({ scope: 'a:b', key }))
        expect(outcomeOf(await store.claim(request({ scope: 'a', key: `b:${key}` })))).toBe(
          'claimed',
        )
        expect(outcomeOf(await store.claim(request({ scope: 'a', key: `2:a:b:${key}` })))).toBe(
          'claimed',
        )
      }))

    it('completes and releases only with the claim token', () =>
      withStore(async ({ store }) => {
        const first = request()
        await store.claim(first)
        const stranger = { ...first, token: randomUUID() }
        expect(await store.complete(stranger, response('x'))).toBe(false)
        expect(await store.release(stranger)).toBe(false)
        if (store.renew !== undefined) expect(await store.renew(stranger, LEASE_MS)).toBe(false)
        expect(outcomeOf(await store.claim({ ...first, token: randomUUID() }))).toBe('in_progress')
      }))

    it('releases a claim so that the next claimant runs the operation', () =>
      withStore(async ({ store }) => {
        const first = request()
        await store.claim(first)
        expect(await store.release(first)).toBe(true)
        expect(outcomeOf(await store.claim({ ...first, token: randomUUID() }))).toBe('claimed')
      }))

    it('never changes a completed record: no second completion, no release', () =>
      withStore(async ({ store }) => {
        const first = request()
        await store.claim(first)
        await store.complete(first, response('original'))
        expect(await store.complete(first, response('other'))).toBe(false)
        expect(await store.release(first)).toBe(false)
        expect(bodyOf(await store.claim({ ...first, token: randomUUID() }))).toBe('original')
      }))

    it('expires a record a TTL after its first claim; then the key is new again', () =>
      withStore(async ({ store, clock }) => {
        const first = request({ ttlMs: 100_000 })
        await store.claim(first)
        clock.advance(1_000)
        await store.complete(first, response('done'))
        clock.advance(100_000 - 1_000 - 1)
        expect(outcomeOf(await store.claim({ ...first, token: randomUUID() }))).toBe('replay')
        clock.advance(1)
        // Expired: the key is new again, even with another fingerprint.
        const other = await store.claim({
          ...first,
          token: randomUUID(),
          fingerprint: 'e'.repeat(64),
        })
        expect(outcomeOf(other)).toBe('claimed')
      }))

    it('gives exactly one of 100 concurrent claimants the key', () =>
      withStore(async ({ store }) => {
        const base = request()
        const outcomes = await Promise.all(
          Array.from({ length: 100 }, () => store.claim({ ...base, token: randomUUID() })),
        )
        expect(outcomes.filter((outcome) => outcome.kind === 'claimed')).toHaveLength(1)
        expect(outcomes.filter((outcome) => outcome.kind === 'in_progress')).toHaveLength(99)
      }))

    it('gives each of 50 keys claimed at once to exactly one of its two claimants', () =>
      withStore(async ({ store }) => {
        const bases = Array.from({ length: 50 }, () => request())
        const outcomes = await Promise.all(
          bases.flatMap((base) => [
            store.claim({ ...base, token: randomUUID() }),
            store.claim({ ...base, token: randomUUID() }),
          ]),
        )
        for (let index = 0; index < bases.length; index++) {
          const pair = [outcomes[2 * index]!, outcomes[2 * index + 1]!].map(outcomeOf).sort()
          expect(pair).toEqual(['claimed', 'in_progress'])
        }
      }))

    it('purges expired records in bounded batches, never one still held', () =>
      withStore(async ({ store, clock }) => {
        const held: ClaimRequest[] = []
        for (let i = 0; i < 7; i++) {
          const claim = request({ ttlMs: 60_000, leaseMs: 60_000 })
          await store.claim(claim)
          if (i < 5) await store.complete(claim, response(String(i)))
          else held.push(claim)
        }
        // The two still held keep their claims past the records' expiry.
        clock.advance(59_000)
        if (store.renew !== undefined) {
          for (const claim of held) expect(await store.renew(claim, 60_000)).toBe(true)
        }
        clock.advance(1_000)
        expect(await store.purgeExpired(3)).toBe(3)
        expect(await store.purgeExpired(3)).toBe(2)
        expect(await store.purgeExpired(3)).toBe(0)
        for (const claim of held) {
          expect(await store.complete(claim, response('late'))).toBe(true)
        }
      }))

    it('notifies a subscriber when the record completes or is released', () =>
      withStore(async ({ store }) => {
        if (store.onSettled === undefined) return
        const first = request()
        await store.claim(first)
        let calls = 0
        const unsubscribe = store.onSettled(first.scope, first.key, () => {
          calls++
        })
        await store.release(first)
        const second = { ...first, token: randomUUID() }
        await store.claim(second)
        await store.complete(second, response('x'))
        await waitUntil(() => calls >= 2)
        unsubscribe()
        expect(calls).toBe(2)
      }))

    it('ends a claim with its holder: the next claimant takes it over, the old token is fenced out, the expiry stays', () =>
      withStore(async (subject) => {
        const { clock } = subject
        if (subject.killHolder === undefined) return
        const first = request({ ttlMs: 100_000 })
        await subject.store.claim(first)
        const next = await subject.killHolder()
        const second = { ...first, token: randomUUID() }
        expect(outcomeOf(await next.claim(second))).toBe('claimed (takeover)')
        expect(await next.complete(first, response('stale'))).toBe(false)
        expect(await next.complete(second, response('fresh'))).toBe(true)
        expect(bodyOf(await next.claim({ ...first, token: randomUUID() }))).toBe('fresh')
        clock.advance(100_000)
        expect(outcomeOf(await next.claim({ ...first, token: randomUUID() }))).toBe('claimed')
      }))

    describe('where claims are leases', () => {
      it('lets another request take over once the lease has lapsed, and fences the old token out', () =>
        withStore(async ({ store, clock }) => {
          if (store.claimLifetime !== 'lease') return
          const first = request()
          await store.claim(first)
          clock.advance(LEASE_MS - 1)
          expect(outcomeOf(await store.claim({ ...first, token: randomUUID() }))).toBe(
            'in_progress',
          )
          clock.advance(1)
          const second = { ...first, token: randomUUID() }
          expect(outcomeOf(await store.claim(second))).toBe('claimed (takeover)')
          expect(await store.complete(first, response('stale'))).toBe(false)
          expect(await store.renew?.(first, LEASE_MS)).toBe(false)
          expect(await store.complete(second, response('fresh'))).toBe(true)
          expect(bodyOf(await store.claim({ ...first, token: randomUUID() }))).toBe('fresh')
        }))

      it('renewal keeps the lease alive past its first term', () =>
        withStore(async ({ store, clock }) => {
          if (store.claimLifetime !== 'lease') return
          const first = request()
          await store.claim(first)
          clock.advance(LEASE_MS - 1000)
          expect(await store.renew?.(first, LEASE_MS)).toBe(true)
          clock.advance(LEASE_MS - 1000)
          expect(outcomeOf(await store.claim({ ...first, token: randomUUID() }))).toBe(
            'in_progress',
          )
        }))
    })

    describe('where claims end with their holder', () => {
      it('keeps a claim however long its holder runs: time alone takes nothing over', () =>
        withStore(async ({ store, clock }) => {
          if (store.claimLifetime === 'lease') return
          const first = request()
          await store.claim(first)
          clock.advance(10 * LEASE_MS)
          expect(outcomeOf(await store.claim({ ...first, token: randomUUID() }))).toBe(
            'in_progress',
          )
          expect(await store.complete(first, response('done'))).toBe(true)
        }))
    })
  })
}

async function waitUntil(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition() && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 5))
}
