import { randomBytes, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { createCluster } from 'redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Clock } from '@ticksupply/idempotency'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import type { RedisStore } from '@ticksupply/idempotency/stores/redis'
import { createRedisStore } from '@ticksupply/idempotency/stores/redis'
import type { TestRedisCluster } from '../../../../test-support/redis-server.js'
import { startTestRedisCluster } from '../../../../test-support/redis-server.js'
import { outcomeOf, request, response, runStoreContract } from '../store-contract.js'

let cluster: TestRedisCluster | undefined
beforeAll(async () => {
  cluster = await startTestRedisCluster(3)
})
afterAll(async () => {
  await cluster?.close()
})

async function connectCluster() {
  const client = createCluster({
    rootNodes: [{ url: cluster?.urls[0] ?? '' }],
    defaults: { disableOfflineQueue: true },
  })
  client.on('error', () => undefined)
  await client.connect()
  return client
}

/** A store on the test cluster with a prefix of its own. */
async function openClusterStore(options: { clock?: Clock; prefix?: string } = {}): Promise<{
  client: Awaited<ReturnType<typeof connectCluster>>
  store: RedisStore
  prefix: string
  close: () => Promise<void>
}> {
  const client = await connectCluster()
  const prefix = options.prefix ?? `test:${randomBytes(6).toString('hex')}:`
  const store = await createRedisStore({
    client,
    prefix,
    onWarning: () => undefined,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  })
  return {
    client,
    store,
    prefix,
    close: async () => {
      await store.close()
      client.destroy()
    },
  }
}

/** How many of this prefix's keys each master holds. */
async function keysPerMaster(
  client: Awaited<ReturnType<typeof connectCluster>>,
  prefix: string,
): Promise<number[]> {
  return Promise.all(
    client.masters.map(async (master) => {
      const node = await client.nodeClient(master)
      return (await node.keys(`${prefix}*`)).length
    }),
  )
}

runStoreContract('Redis Cluster', async (clock) => {
  const opened = await openClusterStore({ clock })
  return { store: opened.store, clock, close: opened.close }
})

describe('Redis store on a cluster', () => {
  it('puts each record in the slot of its hash tag, and spreads records over the masters', async () => {
    const { client, store, prefix, close } = await openClusterStore()
    try {
      for (let i = 0; i < 30; i++) {
        const claim = request({ scope: i % 2 === 0 ? 'acct_1' : 'a}b{c', key: randomUUID() })
        expect(outcomeOf(await store.claim(claim))).toBe('claimed')
        const redisKey = store.keyOf(claim.scope, claim.key)
        // The slot is the hash tag's: the text between the first `{` and the next `}`.
        const open = redisKey.indexOf('{')
        const tag = redisKey.slice(open + 1, redisKey.indexOf('}', open + 1))
        const [keySlot, tagSlot] = await Promise.all(
          [redisKey, tag].map((name) =>
            client.sendCommand(undefined, true, ['CLUSTER', 'KEYSLOT', name]),
          ),
        )
        expect(keySlot).toBe(tagSlot)
      }
      const perMaster = await keysPerMaster(client, prefix)
      expect(perMaster.reduce((sum, count) => sum + count, 0)).toBe(30)
      expect(perMaster.filter((count) => count > 0).length).toBeGreaterThanOrEqual(2)
    } finally {
      await close()
    }
  })

  it('wakes a duplicate waiting on another instance when the completion runs on any node', async () => {
    const a = await openClusterStore()
    const b = await openClusterStore({ prefix: a.prefix })
    try {
      const engineA = createIdempotencyEngine({ store: a.store })
      const engineB = createIdempotencyEngine({
        store: b.store,
        waitMs: 30_000,
        initialPollMs: 20_000,
      })
      // Keys on every master: each completion's PUBLISH runs on the node of its key.
      const outcomes = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const keyed = {
            scope: 'acct',
            key: randomUUID(),
            method: 'POST',
            pathWithQuery: '/v1/things',
            body: Buffer.from('{}'),
          }
          const original = await engineA.begin(keyed)
          if (original.kind !== 'claimed') throw new Error('expected a claim')
          const duplicate = engineB.begin(keyed)
          await sleep(150)
          await original.claim.complete(response('{"id":1}'))
          const outcome = await Promise.race([
            duplicate,
            sleep(5_000).then(() => 'still waiting' as const),
          ])
          return typeof outcome === 'object' ? outcome.kind : outcome
        }),
      )
      expect(outcomes).toEqual(Array.from({ length: 6 }, () => 'replay'))
    } finally {
      await b.close()
      await a.close()
    }
  })
})
