import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type {
  ClaimRequest,
  ManualClock,
  Store,
  StoreTransaction,
  StoredResponse,
} from '@ticksupply/idempotency'
import { createManualClock } from '@ticksupply/idempotency'

export interface StoreUnderTest<Tx extends StoreTransaction> {
  readonly store: Store<Tx>
  /** Moves the store's notion of time. */
  readonly clock: ManualClock
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

/**
 * The behaviour every Store must show, run against a real backend. `open` gets a manual clock
 * that the store must use for leases and expiry.
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
        expect(await store.claim(first)).toEqual({ kind: 'claimed', takeover: false })
        expect(await store.claim({ ...first, token: randomUUID() })).toEqual({
          kind: 'in_progress',
        })
      }))

    it('reports a mismatch for another fingerprint, in progress or completed', () =>
      withStore(async ({ store }) => {
        const first = request()
        await store.claim(first)
        expect(
          await store.claim({ ...first, token: randomUUID(), fingerprint: 'e'.repeat(64) }),
        ).toEqual({
          kind: 'mismatch',
        })
        await store.complete(first, response('{"id":1}'))
        expect(
          await store.claim({ ...first, token: randomUUID(), fingerprint: 'e'.repeat(64) }),
        ).toEqual({
          kind: 'mismatch',
        })
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
        expect(await store.claim({ ...first, scope: 'acct_2', token: randomUUID() })).toEqual({
          kind: 'claimed',
          takeover: false,
        })
      }))

    it('keeps scopes apart even when scope and key could be spliced differently', () =>
      withStore(async ({ store }) => {
        const key = randomUUID()
        await store.claim(request({ scope: 'a:b', key }))
        expect((await store.claim(request({ scope: 'a', key: `b:${key}` }))).kind).toBe('claimed')
      }))

    it('completes and releases only with the claim token', () =>
      withStore(async ({ store }) => {
        const first = request()
        await store.claim(first)
        const stranger = { ...first, token: randomUUID() }
        expect(await store.complete(stranger, response('x'))).toBe(false)
        expect(await store.release(stranger)).toBe(false)
        expect(await store.renew(stranger, LEASE_MS)).toBe(false)
        expect(await store.claim({ ...first, token: randomUUID() })).toEqual({
          kind: 'in_progress',
        })
      }))

    it('releases a claim so that the next claimant runs the operation', () =>
      withStore(async ({ store }) => {
        const first = request()
        await store.claim(first)
        expect(await store.release(first)).toBe(true)
        expect(await store.claim({ ...first, token: randomUUID() })).toEqual({
          kind: 'claimed',
          takeover: false,
        })
      }))

    it('never changes a completed record: no second completion, no release', () =>
      withStore(async ({ store }) => {
        const first = request()
        await store.claim(first)
        await store.complete(first, response('original'))
        expect(await store.complete(first, response('other'))).toBe(false)
        expect(await store.release(first)).toBe(false)
        const again = await store.claim({ ...first, token: randomUUID() })
        expect(again.kind === 'replay' && Buffer.from(again.response.body).toString()).toBe(
          'original',
        )
      }))

    it('lets another request take over once the lease has lapsed, and fences the old token out', () =>
      withStore(async ({ store, clock }) => {
        const first = request()
        await store.claim(first)
        clock.advance(LEASE_MS - 1)
        expect(await store.claim({ ...first, token: randomUUID() })).toEqual({
          kind: 'in_progress',
        })
        clock.advance(1)
        const second = { ...first, token: randomUUID() }
        expect(await store.claim(second)).toEqual({ kind: 'claimed', takeover: true })
        expect(await store.complete(first, response('stale'))).toBe(false)
        expect(await store.renew(first, LEASE_MS)).toBe(false)
        expect(await store.complete(second, response('fresh'))).toBe(true)
        const replay = await store.claim({ ...first, token: randomUUID() })
        expect(replay.kind === 'replay' && Buffer.from(replay.response.body).toString()).toBe(
          'fresh',
        )
      }))

    it('renewal keeps the lease alive past its first term', () =>
      withStore(async ({ store, clock }) => {
        const first = request()
        await store.claim(first)
        clock.advance(LEASE_MS - 1000)
        expect(await store.renew(first, LEASE_MS)).toBe(true)
        clock.advance(LEASE_MS - 1000)
        expect(await store.claim({ ...first, token: randomUUID() })).toEqual({
          kind: 'in_progress',
        })
      }))

    it('expires a record a TTL after its first claim; a takeover does not extend it', () =>
      withStore(async ({ store, clock }) => {
        const first = request({ ttlMs: 100_000 })
        await store.claim(first)
        clock.advance(LEASE_MS)
        const second = { ...first, token: randomUUID() }
        expect((await store.claim(second)).kind).toBe('claimed')
        await store.complete(second, response('done'))
        clock.advance(100_000 - LEASE_MS - 1)
        expect((await store.claim({ ...first, token: randomUUID() })).kind).toBe('replay')
        clock.advance(1)
        // Expired: the key is new again, even with another fingerprint.
        expect(
          await store.claim({ ...first, token: randomUUID(), fingerprint: 'e'.repeat(64) }),
        ).toEqual({
          kind: 'claimed',
          takeover: false,
        })
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

    it('purges expired records in bounded batches, never a live lease', () =>
      withStore(async ({ store, clock }) => {
        const running: ClaimRequest[] = []
        for (let i = 0; i < 7; i++) {
          const claim = request({ ttlMs: 60_000, leaseMs: 60_000 })
          await store.claim(claim)
          if (i < 5) await store.complete(claim, response(String(i)))
          else running.push(claim)
        }
        // The two still in progress renew their leases past the records' expiry.
        clock.advance(59_000)
        for (const claim of running) expect(await store.renew(claim, 60_000)).toBe(true)
        clock.advance(1_000)
        expect(await store.purgeExpired(3)).toBe(3)
        expect(await store.purgeExpired(3)).toBe(2)
        expect(await store.purgeExpired(3)).toBe(0)
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
  })
}

async function waitUntil(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition() && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 5))
}
