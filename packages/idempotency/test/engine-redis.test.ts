import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ClaimRef, IdempotentRequest, StoredResponse } from '@ticksupply/idempotency'
import {
  LeaseLostError,
  createIdempotencyEngine,
  fingerprintRequest,
} from '@ticksupply/idempotency'
import type { RedisStore } from '@ticksupply/idempotency/stores/redis'
import type { TestRedisServer } from '../../../test-support/redis-server.js'
import { startTestRedisServer } from '../../../test-support/redis-server.js'
import { connectRedis, openTemporaryRedis } from './support/redis.js'
import { outcomeOf, request as claimRequest } from './store-contract.js'

/** A request whose body is bytes (not a streamed fingerprint), to fingerprint here too. */
type BytesRequest = IdempotentRequest & { readonly body: Uint8Array }

function keyed(): BytesRequest {
  return {
    scope: 'acct_1',
    key: randomUUID(),
    method: 'POST',
    pathWithQuery: '/v1/things',
    body: Buffer.from('{"a":1}'),
  }
}

const fingerprintOf = (request: BytesRequest) =>
  fingerprintRequest(request.method, request.pathWithQuery, request.body)

const answer: StoredResponse = {
  status: 201,
  headers: { 'content-type': 'application/json' },
  body: Buffer.from('{"ok":true}'),
  requestId: 'req_1',
}

/** The real store, with its renewals counted. */
function countingRenewals(store: RedisStore): RedisStore & { renewals: number } {
  const counted = Object.create(store) as RedisStore & { renewals: number }
  counted.renewals = 0
  counted.renew = (ref: ClaimRef, leaseMs: number) => {
    counted.renewals++
    return store.renew?.(ref, leaseMs) ?? Promise.resolve(false)
  }
  return counted
}

function aborted(signal: AbortSignal, timeoutMs: number): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      resolve(false)
    }, timeoutMs)
    signal.addEventListener('abort', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
}

describe('Engine on Redis: leases', () => {
  let server: TestRedisServer | undefined
  beforeAll(async () => {
    server = await startTestRedisServer()
  })
  afterAll(async () => {
    await server?.close()
  })

  it('loses a claim whose renewal fails with a store error, and gives it back by token when there is nothing to store', async () => {
    const url = server?.url ?? ''
    const { client, store, close } = await openTemporaryRedis({ url, commandTimeoutMs: 300 })
    const admin = await connectRedis(url)
    try {
      // Renewals every 2 s; the lease, as granted by the claim, lapses 6 s after it.
      const engine = createIdempotencyEngine({ store, leaseMs: 6_000, ttlMs: 600_000 })
      const request = keyed()
      const begun = await engine.begin(request)
      if (begun.kind !== 'claimed') throw new Error('expected a claim')
      const { claim } = begun
      const key = store.keyOf(request.scope, request.key)

      // Redis stops answering for 2.5 s: the first renewal times out.
      await admin.sendCommand(['CLIENT', 'PAUSE', '2500', 'ALL'])
      expect(await aborted(claim.signal, 15_000)).toBe(true)
      expect(claim.signal.reason).toBeInstanceOf(LeaseLostError)
      expect(claim.state).toBe('lost')

      // The request ends without an answer to store (a 503): the claim goes back in the
      // background.
      await expect(claim.finish({ ...answer, status: 503 })).rejects.toBeInstanceOf(LeaseLostError)

      // A lapsed lease would leave the record in place (in progress, expiring in 10 minutes);
      // only the release by token deletes it.
      const deadline = Date.now() + 20_000
      while ((await client.exists(key)) === 1 && Date.now() < deadline) await sleep(50)
      expect(await client.exists(key)).toBe(0)
      const next = await store.claim(claimRequest({ scope: request.scope, key: request.key }))
      expect(outcomeOf(next)).toBe('claimed')
    } finally {
      admin.destroy()
      await close()
    }
  })

  it('stores the answer of an operation that ran through a renewal that failed, by token: a retry replays it', async () => {
    const url = server?.url ?? ''
    const { store, close } = await openTemporaryRedis({ url, commandTimeoutMs: 300 })
    const admin = await connectRedis(url)
    try {
      const events: string[] = []
      // Renewals every second: the first is sent at 1 s, into a Redis paused from 0.8 to 1.4 s,
      // and times out at 1.3 s.
      const engine = createIdempotencyEngine({
        store,
        leaseMs: 3_000,
        ttlMs: 600_000,
        onEvent: (event) => events.push(event.type),
      })
      const request = keyed()
      let runs = 0
      const operation = async () => {
        runs++
        // The effects commit elsewhere; meanwhile Redis stalls across a renewal.
        await sleep(800)
        await admin.sendCommand(['CLIENT', 'PAUSE', '600', 'WRITE'])
        await sleep(1_200)
        return answer
      }
      await engine.execute(request, operation)
      expect(events).toContain('lease_lost')
      const retry = await engine.execute(request, operation)
      expect(retry.replayed).toBe(true)
      expect(runs).toBe(1)
    } finally {
      admin.destroy()
      await close()
    }
  })

  it('counts a claim lost once its lease ran out while the event loop stood still, before any renewal says so', async () => {
    const { store, close } = await openTemporaryRedis()
    try {
      const leaseMs = 300
      const engine = createIdempotencyEngine({ store, leaseMs, ttlMs: 600_000 })
      const begun = await engine.begin(keyed())
      if (begun.kind !== 'claimed') throw new Error('expected a claim')
      const { claim } = begun
      const signal = claim.signal
      // Nothing else runs meanwhile: no renewal, no timer.
      const until = performance.now() + 2 * leaseMs
      while (performance.now() < until) {
        // Busy: the event loop is blocked.
      }
      expect(claim.state).toBe('lost')
      expect(signal.aborted).toBe(true)
      expect(signal.reason).toBeInstanceOf(LeaseLostError)
    } finally {
      await close()
    }
  })

  it('gives back a claim whose answer timed out even when Redis has not cached the release script', async () => {
    const url = server?.url ?? ''
    const { client, store, close } = await openTemporaryRedis({ url, commandTimeoutMs: 300 })
    const peer = await openTemporaryRedis({ url })
    const admin = await connectRedis(url)
    try {
      // A server that restarted knows no script; one claim and completion cache only theirs.
      await admin.sendCommand(['SCRIPT', 'FLUSH'])
      const warm = claimRequest()
      await store.claim(warm)
      await store.complete(warm, answer)
      // The claim lands once Redis resumes, after its caller gave up on the answer.
      await admin.sendCommand(['CLIENT', 'PAUSE', '800', 'WRITE'])
      const lost = claimRequest()
      await expect(store.claim(lost)).rejects.toThrow()
      const key = store.keyOf(lost.scope, lost.key)
      const deadline = Date.now() + 5_000
      while ((await client.exists(key)) === 1 && Date.now() < deadline) await sleep(50)
      expect(await client.exists(key)).toBe(0)
      const retry = await peer.store.claim(claimRequest({ scope: lost.scope, key: lost.key }))
      expect(outcomeOf(retry)).toBe('claimed')
    } finally {
      admin.destroy()
      await peer.close()
      await close()
    }
  })

  it.each([
    ['below', { ttlMs: 1_000, leaseMs: 2_000 }],
    ['equal to', { ttlMs: 2_000, leaseMs: 2_000 }],
  ])('refuses a record lifetime %s the lease where claims are leases', async (_name, options) => {
    const { store, close } = await openTemporaryRedis()
    try {
      expect(() => createIdempotencyEngine({ store, ...options })).toThrow(/ttlMs/)
    } finally {
      await close()
    }
  })

  it('keeps claims alive on one shared timer through an operation four leases long', async () => {
    const holder = await openTemporaryRedis()
    const peer = await openTemporaryRedis({ prefix: holder.prefix })
    try {
      const store = countingRenewals(holder.store)
      const leaseMs = 1_500
      const engine = createIdempotencyEngine({ store, leaseMs, ttlMs: 600_000 })
      const requests = [keyed(), keyed(), keyed()]
      const claims = await Promise.all(
        requests.map(async (request) => {
          const begun = await engine.begin(request)
          if (begun.kind !== 'claimed') throw new Error('expected a claim')
          return begun.claim
        }),
      )
      // Another instance tries the keys while the operation runs: never a takeover.
      const peerOutcomes: string[] = []
      for (let elapsed = 0; elapsed < 4 * leaseMs; elapsed += leaseMs / 3) {
        await sleep(leaseMs / 3)
        for (const request of requests) {
          const outcome = await peer.store.claim(
            claimRequest({
              scope: request.scope,
              key: request.key,
              fingerprint: fingerprintOf(request),
              leaseMs,
            }),
          )
          peerOutcomes.push(outcomeOf(outcome))
        }
      }
      expect(peerOutcomes.length).toBeGreaterThanOrEqual(36)
      expect(new Set(peerOutcomes)).toEqual(new Set(['in_progress']))
      for (const claim of claims) {
        expect(claim.signal.aborted).toBe(false)
        await claim.finish(answer)
        expect(claim.state).toBe('completed')
      }
      expect(store.renewals).toBeGreaterThan(0)
      const first = requests[0]!
      const replay = await peer.store.claim(
        claimRequest({ scope: first.scope, key: first.key, fingerprint: fingerprintOf(first) }),
      )
      expect(outcomeOf(replay)).toBe('replay')
    } finally {
      await peer.close()
      await holder.close()
    }
  })
})
