import { randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import { inject } from 'vitest'
import type { RedisStore, RedisStoreOptions } from '@ticksupply/idempotency/stores/redis'
import { createRedisStore } from '@ticksupply/idempotency/stores/redis'

/**
 * A connected client that fails fast while its server is down: no offline queue, a short
 * connect timeout, and reconnects every `reconnectMs` (so a restarted server is found quickly).
 */
export async function connectRedis(url: string = inject('redisUrl'), reconnectMs = 100) {
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: { connectTimeout: 1_000, reconnectStrategy: () => reconnectMs },
  })
  // Errors while the server is down are expected; the store reports what matters.
  client.on('error', () => undefined)
  await client.connect()
  return client
}

export type TestRedisClient = Awaited<ReturnType<typeof connectRedis>>

/**
 * A store on the run's Redis (or on `url`), with a key prefix of its own so that tests never
 * see each other's records; closing it deletes its keys.
 */
export async function openTemporaryRedis(
  options: Partial<Omit<RedisStoreOptions, 'client'>> & { url?: string; reconnectMs?: number } = {},
): Promise<{
  client: TestRedisClient
  store: RedisStore
  prefix: string
  close: () => Promise<void>
}> {
  const { url, reconnectMs, ...storeOptions } = options
  const client = await connectRedis(url, reconnectMs)
  const prefix = storeOptions.prefix ?? `test:${randomBytes(6).toString('hex')}:`
  const store = await createRedisStore({
    onWarning: () => undefined,
    ...storeOptions,
    client,
    prefix,
  })
  return {
    client,
    store,
    prefix,
    close: async () => {
      await store.close()
      if (client.isReady) await deleteKeys(client, prefix)
      client.destroy()
    },
  }
}

/** Deletes every key that starts with `prefix`. */
export async function deleteKeys(client: TestRedisClient, prefix: string): Promise<void> {
  for await (const page of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
    if (page.length > 0) await client.del(page)
  }
}
