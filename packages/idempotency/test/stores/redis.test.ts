import { runStoreContract } from '../store-contract.js'
import { openTemporaryRedis } from '../support/redis.js'

runStoreContract('Redis', async (clock) => {
  const opened = await openTemporaryRedis({ clock })
  return { store: opened.store, clock, close: opened.close }
})
