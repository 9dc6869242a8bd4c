import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'
import { createIdempotencyEngine } from '@ticksupply/idempotency'
import { fastifyIdempotency } from '@ticksupply/idempotency/fastify'
import {
  RedisStoreDisconnectedError,
  RedisStoreTimeoutError,
} from '@ticksupply/idempotency/stores/redis'
import { startTestRedisServer } from '../../../test-support/redis-server.js'
import type { Answer } from './support/http.js'
import { send } from './support/http.js'
import { connectRedis, openTemporaryRedis } from './support/redis.js'

/**
 * Redis as the idempotency store, the resources elsewhere (here: the app's memory). Its server
 * is killed and restarted while the app runs; the counts are what the contract fixes.
 */
describe('Redis outage, measured', () => {
  it('answers keyed requests 503 at once and runs nothing while Redis is down, serves unkeyed ones, and recovers by itself', async () => {
    // Writes fsynced before they are acknowledged: a completion survives the kill.
    const server = await startTestRedisServer(['--appendonly', 'yes', '--appendfsync', 'always'])
    const { client, store, close } = await openTemporaryRedis({
      url: server.url,
      commandTimeoutMs: 1_000,
    })
    const storeErrors: unknown[] = []
    const engine = createIdempotencyEngine({
      store,
      onEvent: (event) => {
        if (event.type === 'store_error') storeErrors.push(event.error)
      },
    })
    const app = Fastify()
    /** The operation's effects, in memory: one entry per run, with whether it held a claim. */
    const effects: { key: string | null; protected: boolean }[] = []
    await app.register(fastifyIdempotency, { engine, scope: () => 'acct_1' })
    app.post('/orders', async (request, reply) => {
      const claim = request.idempotencyClaim
      effects.push({
        key: request.idempotencyKey,
        protected: request.idempotencyKey === null || claim?.state === 'active',
      })
      return reply.code(201).send({ order: effects.length })
    })
    const url = `${await app.listen({ host: '127.0.0.1', port: 0 })}/orders`
    const order = (key?: string) =>
      send(url, key === undefined ? { body: '{}' } : { key, body: '{}' })
    const runsOf = (key: string) => effects.filter((effect) => effect.key === key).length

    const counts = {
      completedBefore: 0,
      keyedDuringOutage: 0,
      answered503DuringOutage: 0,
      slowest503Ms: 0,
      unkeyedServedDuringOutage: 0,
      operationsRunWithoutProtection: 0,
      keyedRunsDuringOutage: 0,
      completionsLost: 0,
      retriesAfterRecovery: 0,
      keysRunTwice: 0,
    }
    try {
      // Before: keyed requests complete.
      const before = Array.from({ length: 20 }, () => randomUUID())
      const firstAnswers = new Map<string, Answer>()
      await Promise.all(
        before.map(async (key) => {
          const answer = await order(key)
          if (answer.status === 201) firstAnswers.set(key, answer)
        }),
      )
      counts.completedBefore = firstAnswers.size
      expect(counts.completedBefore).toBe(20)

      // Down.
      await server.kill()
      const deadline = Date.now() + 10_000
      while (client.isReady && Date.now() < deadline) await sleep(10)
      expect(client.isReady).toBe(false)
      const errorsBefore = storeErrors.length
      const runsBefore = effects.length
      const during = Array.from({ length: 20 }, () => randomUUID())
      const outageAnswers = await Promise.all(
        during.map(async (key) => {
          const started = performance.now()
          const answer = await order(key)
          counts.slowest503Ms = Math.max(counts.slowest503Ms, performance.now() - started)
          return answer
        }),
      )
      counts.keyedDuringOutage = during.length
      counts.answered503DuringOutage = outageAnswers.filter(
        (answer) =>
          answer.status === 503 &&
          (JSON.parse(answer.text) as { error: { code: string } }).error.code === 'unavailable',
      ).length
      counts.keyedRunsDuringOutage = effects.slice(runsBefore).filter((e) => e.key !== null).length
      const unkeyed = await Promise.all(Array.from({ length: 10 }, () => order()))
      counts.unkeyedServedDuringOutage = unkeyed.filter((answer) => answer.status === 201).length
      // Failed fast: every store error of the outage is "not connected" (nothing was sent and
      // waited on), none a timeout.
      const outageErrors = storeErrors.slice(errorsBefore)
      expect(outageErrors.length).toBeGreaterThan(0)
      expect(outageErrors.filter((error) => error instanceof RedisStoreTimeoutError)).toEqual([])
      expect(outageErrors.every((error) => error instanceof RedisStoreDisconnectedError)).toBe(true)

      // Back: nothing is restarted or reconfigured but the Redis server itself.
      await server.start()
      const recoveredBy = Date.now() + 30_000
      let probe: Answer | undefined
      while (Date.now() < recoveredBy) {
        probe = await order(randomUUID())
        if (probe.status === 201) break
        await sleep(100)
      }
      expect(probe?.status).toBe(201)
      const subscribedBy = Date.now() + 10_000
      while (!store.subscribed && Date.now() < subscribedBy) await sleep(20)
      expect(store.subscribed).toBe(true)

      // Every completion from before the outage is still in Redis, and replays.
      const reader = await connectRedis(server.url)
      try {
        for (const key of before) {
          const record = await reader.hGetAll(store.keyOf('acct_1', key))
          const replay = await order(key)
          const kept =
            record['st'] === 'c' &&
            record['body'] === firstAnswers.get(key)?.text &&
            replay.status === 201 &&
            replay.headers.get('idempotent-replayed') === 'true' &&
            replay.text === firstAnswers.get(key)?.text
          if (!kept) counts.completionsLost++
        }
      } finally {
        reader.destroy()
      }
      // The keys refused during the outage run now, once each.
      const retried = await Promise.all(during.map((key) => order(key)))
      counts.retriesAfterRecovery = retried.filter((answer) => answer.status === 201).length
      counts.keysRunTwice = [...before, ...during].filter((key) => runsOf(key) > 1).length
      counts.operationsRunWithoutProtection = effects.filter((effect) => !effect.protected).length
      console.log(`Redis outage counts: ${JSON.stringify(counts)}`)

      expect(counts.answered503DuringOutage).toBe(20)
      expect(counts.keyedRunsDuringOutage).toBe(0)
      expect(counts.unkeyedServedDuringOutage).toBe(10)
      expect(counts.operationsRunWithoutProtection).toBe(0)
      expect(counts.completionsLost).toBe(0)
      expect(counts.retriesAfterRecovery).toBe(20)
      expect(counts.keysRunTwice).toBe(0)
    } finally {
      await app.close()
      await close()
      await server.close()
    }
  })
})
