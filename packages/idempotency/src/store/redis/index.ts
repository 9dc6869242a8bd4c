export type {
  RedisStoreClient,
  RedisStoreCluster,
  RedisStoreConnection,
  RedisSubscriberClient,
} from './redis-connection.js'
export { RedisStoreDisconnectedError, RedisStoreTimeoutError } from './redis-connection.js'
export type { RedisStore, RedisStoreOptions } from './redis-store.js'
export { createRedisStore } from './redis-store.js'
