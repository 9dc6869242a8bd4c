import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import type { IdempotencyEvent } from '@ticksupply/idempotency'
import { createIdempotencyEngine, createManualClock } from '@ticksupply/idempotency'
import { createRedisStore } from '@ticksupply/idempotency/stores/redis'
import type { TestRedisServer } from '../../../../test-support/redis-server.js'
import { startTestRedisServer } from '../../../../test-support/redis-server.js'
import { CLAIM_DECISION_TABLE, describeCase } from '../support/claim-decision-table.js'
import type { TestRedisClient } from '../support/redis.js'
import { connectRedis, openTemporaryRedis } from '../support/redis.js'
import { outcomeOf, request, response } from '../store-contract.js'

const FINGERPRINT = 'f'.repeat(64)

/** The store's outcome in the decision table's words. */
const DECISION_OF: Record<string, string> = {
  claimed: 'fresh',
  'claimed (takeover)': 'take_over',
  replay: 'replay',
  mismatch: 'mismatch',
  in_progress: 'in_progress',
}

describe('Redis claim script', () => {
  it('decides every case of the claim table as decideClaim does', async () => {
    const clock = createManualClock()
    const { client, store, close } = await openTemporaryRedis({ clock })
    try {
      const decided: string[] = []
      for (const entry of CLAIM_DECISION_TABLE) {
        const claim = request({ fingerprint: FINGERPRINT })
        const { record } = entry
        if (record !== undefined) {
          const now = clock.now()
          const fields: Record<string, string> = {
            st: record.state === 'completed' ? 'c' : 'p',
            fp: record.sameFingerprint ? FINGERPRINT : 'e'.repeat(64),
            exp: String(now + record.expiresInMs),
          }
          if (record.state === 'completed') {
            Object.assign(fields, { status: '201', hdr: '{}', body: 'seeded', rid: 'req_seed' })
          } else {
            Object.assign(fields, {
              tok: 'seeded-token',
              lease: String(now + (record.leaseEndsInMs ?? 0)),
            })
          }
          const key = store.keyOf(claim.scope, claim.key)
          await client.hSet(key, fields)
          await client.pExpire(key, 60_000)
        }
        decided.push(
          `${describeCase(entry)}: ${DECISION_OF[outcomeOf(await store.claim(claim))] ?? '?'}`,
        )
      }
      expect(decided).toEqual(
        CLAIM_DECISION_TABLE.map((entry) => `${describeCase(entry)}: ${entry.expected}`),
      )
    } finally {
      await close()
    }
  })

  it('takes a claim over with the record expiry unchanged, and keeps the native TTL at least as long', async () => {
    const clock = createManualClock()
    const { client, store, close } = await openTemporaryRedis({ clock })
    try {
      const first = request({ ttlMs: 100_000, leaseMs: 30_000 })
      await store.claim(first)
      const key = store.keyOf(first.scope, first.key)
      const expiresAt = await client.hGet(key, 'exp')
      clock.advance(30_000)
      expect(outcomeOf(await store.claim({ ...first, token: randomUUID() }))).toBe(
        'claimed (takeover)',
      )
      expect(await client.hGet(key, 'exp')).toBe(expiresAt)
      // Native TTL: the remaining 70 s of the record, on the server's own clock.
      const ttlMs = await client.pTTL(key)
      expect(ttlMs).toBeGreaterThan(60_000)
      expect(ttlMs).toBeLessThanOrEqual(100_000)
    } finally {
      await close()
    }
  })
})

describe('Redis store keys', () => {
  it('names each record by a length-framed hash tag of its scope and key', async () => {
    const { client, store, prefix, close } = await openTemporaryRedis()
    try {
      const key = randomUUID()
      expect(store.keyOf('acct_1', key)).toBe(`${prefix}{6:acct_1:${key}}`)
      await store.claim(request({ scope: 'acct_1', key }))
      expect(await client.exists(`${prefix}{6:acct_1:${key}}`)).toBe(1)
      // The record's fields live in one hash: one key, one slot.
      expect(await client.type(`${prefix}{6:acct_1:${key}}`)).toBe('hash')
    } finally {
      await close()
    }
  })

  it('keeps crafted scopes and keys apart: braces, colons and digits reach no other record', async () => {
    const { client, store, prefix, close } = await openTemporaryRedis()
    try {
      const key = randomUUID()
      const scopes = ['a', 'a:b', '1:a', 'a}', '{a', '{a}', `a:${key}`, '']
      const keysOf = scopes.map((scope) => store.keyOf(scope, key))
      expect(new Set(keysOf).size).toBe(scopes.length)
      for (const scope of scopes) {
        expect(outcomeOf(await store.claim(request({ scope, key })))).toBe('claimed')
      }
      const written = await client.keys(`${prefix}*`)
      expect(written.sort()).toEqual([...keysOf].sort())
    } finally {
      await close()
    }
  })

  it('refuses a prefix with braces, which would put every record in one cluster slot', async () => {
    const client = await connectRedis()
    try {
      await expect(createRedisStore({ client, prefix: 'idem:{all}:' })).rejects.toThrow(TypeError)
    } finally {
      client.destroy()
    }
  })
})

describe('Redis maxmemory-policy', () => {
  let evicting: TestRedisServer | undefined
  beforeAll(async () => {
    evicting = await startTestRedisServer(['--maxmemory-policy', 'allkeys-lru'])
  })
  afterAll(async () => {
    await evicting?.close()
  })

  it('warns at start when the server may evict records', async () => {
    const warnings: string[] = []
    const { store, close } = await openTemporaryRedis({
      url: evicting?.url ?? '',
      onWarning: (message) => warnings.push(message),
    })
    try {
      expect(store.memoryPolicy).toBe('allkeys-lru')
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain('allkeys-lru')
    } finally {
      await close()
    }
  })

  it('does not warn on noeviction', async () => {
    const warnings: string[] = []
    const { store, close } = await openTemporaryRedis({
      onWarning: (message) => warnings.push(message),
    })
    try {
      expect(store.memoryPolicy).toBe('noeviction')
      expect(warnings).toEqual([])
    } finally {
      await close()
    }
  })

  it('starts when CONFIG is refused (as on managed Redis), and says the policy went unchecked', async () => {
    const admin = await connectRedis()
    const user = `no_config_${randomUUID().slice(0, 8)}`
    await admin.sendCommand([
      'ACL',
      'SETUSER',
      user,
      'on',
      '>secret',
      '~*',
      '&*',
      '+@all',
      '-config',
    ])
    const url = new URL(inject('redisUrl'))
    url.username = user
    url.password = 'secret'
    const warnings: string[] = []
    try {
      const { store, close } = await openTemporaryRedis({
        url: url.toString(),
        onWarning: (message) => warnings.push(message),
      })
      try {
        expect(store.memoryPolicy).toBeUndefined()
        expect(warnings).toHaveLength(1)
        expect(warnings[0]).toContain('could not read')
        expect(outcomeOf(await store.claim(request()))).toBe('claimed')
      } finally {
        await close()
      }
    } finally {
      await admin.sendCommand(['ACL', 'DELUSER', user])
      admin.destroy()
    }
  })
})

/** The id of the connection named `name`, from CLIENT LIST. */
async function clientIdNamed(admin: TestRedisClient, name: string): Promise<string | undefined> {
  const list = await admin.clientList()
  const found = list.find((client) => client.name === name)
  return found === undefined ? undefined : String(found.id)
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) return false
    await sleep(10)
  }
  return true
}

describe('Redis store across instances', () => {
  const keyed = () => ({
    scope: 'acct',
    key: randomUUID(),
    method: 'POST',
    pathWithQuery: '/v1/things',
    body: Buffer.from('{}'),
  })

  it('wakes a duplicate waiting on another instance through pub/sub, not at its next poll', async () => {
    const a = await openTemporaryRedis()
    const b = await openTemporaryRedis({ prefix: a.prefix })
    try {
      expect(b.store.subscribed).toBe(true)
      const events: IdempotencyEvent['type'][] = []
      const engineA = createIdempotencyEngine({ store: a.store })
      // A 20 s poll: only the publication can end this wait in time.
      const engineB = createIdempotencyEngine({
        store: b.store,
        waitMs: 30_000,
        initialPollMs: 20_000,
        onEvent: (event) => events.push(event.type),
      })
      const request = keyed()
      const original = await engineA.begin(request)
      if (original.kind !== 'claimed') throw new Error('expected a claim')
      const duplicate = engineB.begin(request)
      await sleep(150)
      await original.claim.complete(response('{"id":1}'))
      const outcome = await Promise.race([
        duplicate,
        sleep(5_000).then(() => 'still waiting' as const),
      ])
      expect(typeof outcome === 'object' && outcome.kind).toBe('replay')
      expect(events.filter((type) => type === 'woken')).toHaveLength(1)
    } finally {
      await b.close()
      await a.close()
    }
  })

  it('falls back to polling while its subscriber connection is down, and subscribes again', async () => {
    const admin = await connectRedis()
    // B connects as a user of its own, so that its subscriber can be kept from coming back.
    const user = `instance_b_${randomUUID().slice(0, 8)}`
    await admin.sendCommand(['ACL', 'SETUSER', user, 'on', '>secret', '~*', '&*', '+@all'])
    const url = new URL(inject('redisUrl'))
    url.username = user
    url.password = 'secret'
    const a = await openTemporaryRedis()
    const b = await openTemporaryRedis({
      url: url.toString(),
      prefix: a.prefix,
      fallbackPollMs: 100,
      reconnectMs: 200,
    })
    try {
      const engineA = createIdempotencyEngine({ store: a.store })
      // A 20 s poll: only the store's own polling can end this wait in time.
      const engineB = createIdempotencyEngine({
        store: b.store,
        waitMs: 30_000,
        initialPollMs: 20_000,
      })
      const request = keyed()
      const original = await engineA.begin(request)
      if (original.kind !== 'claimed') throw new Error('expected a claim')
      const duplicate = engineB.begin(request)
      await sleep(150)

      // The user is turned off (its open connections stay), then B's subscriber is killed: it
      // cannot log in again, so it stays down.
      await admin.sendCommand(['ACL', 'SETUSER', user, 'off'])
      const subscriberId = await clientIdNamed(
        admin,
        `ticksupply-idempotency-${b.store.instanceId}`,
      )
      expect(subscriberId).toBeDefined()
      await admin.sendCommand(['CLIENT', 'KILL', 'ID', subscriberId ?? ''])
      expect(await waitFor(() => !b.store.subscribed)).toBe(true)

      // Published while B hears nothing.
      await original.claim.complete(response('{"id":1}'))
      const outcome = await Promise.race([
        duplicate,
        sleep(5_000).then(() => 'still waiting' as const),
      ])
      expect(typeof outcome === 'object' && outcome.kind).toBe('replay')
      expect(b.store.subscribed).toBe(false)

      // Once it may log in again, the client reconnects and subscribes by itself.
      await admin.sendCommand(['ACL', 'SETUSER', user, 'on'])
      expect(await waitFor(() => b.store.subscribed)).toBe(true)
    } finally {
      await b.close()
      await a.close()
      await admin.sendCommand(['ACL', 'DELUSER', user])
      admin.destroy()
    }
  })

  it('gives the key to exactly one of 100 claimants spread over three instances', async () => {
    const a = await openTemporaryRedis()
    const b = await openTemporaryRedis({ prefix: a.prefix })
    const c = await openTemporaryRedis({ prefix: a.prefix })
    try {
      const base = request({ scope: 'acct' })
      const stores = [a.store, b.store, c.store]
      const outcomes = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          stores[i % 3]!.claim({ ...base, token: randomUUID() }),
        ),
      )
      expect(outcomes.filter((outcome) => outcome.kind === 'claimed')).toHaveLength(1)
      expect(outcomes.filter((outcome) => outcome.kind === 'in_progress')).toHaveLength(99)
    } finally {
      await c.close()
      await b.close()
      await a.close()
    }
  })
})
