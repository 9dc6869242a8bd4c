import type { RedisArgument, TypeMapping } from 'redis'
import { RESP_TYPES } from 'redis'
import type { RedisScript } from './redis-scripts.js'

/** What the store asks of a command: a bound on its wait, and replies with bytes intact. */
export interface RedisCommandOptions {
  readonly timeout?: number
  readonly typeMapping?: TypeMapping
}

/** The subscriber connection the store makes with `duplicate()`; a node-redis client is one. */
export interface RedisSubscriberClient {
  readonly isReady: boolean
  connect(): Promise<unknown>
  subscribe(channel: string, listener: (message: string, channel: string) => void): Promise<void>
  on(event: 'error', listener: (error: Error) => void): unknown
  on(event: 'ready' | 'reconnecting' | 'end', listener: () => void): unknown
  destroy(): void
}

/**
 * A connected node-redis client (`createClient()` of `redis`, v6): the store runs its scripts
 * on it and subscribes on a duplicate of it. The store never closes it.
 */
export interface RedisStoreClient {
  readonly isReady: boolean
  sendCommand(args: readonly RedisArgument[], options?: RedisCommandOptions): Promise<unknown>
  duplicate(overrides?: {
    readonly name?: string
    readonly disableOfflineQueue?: boolean
  }): RedisSubscriberClient
}

/**
 * A connected node-redis cluster client (`createCluster()` of `redis`, v6). Commands go to the
 * node that serves their key's slot; the completion channel uses classic pub/sub, which the
 * cluster broadcasts to every node.
 */
export interface RedisStoreCluster {
  readonly isReady: boolean
  readonly masters: readonly unknown[]
  sendCommand(
    firstKey: RedisArgument | undefined,
    isReadonly: boolean | undefined,
    args: readonly RedisArgument[],
    options?: RedisCommandOptions,
  ): Promise<unknown>
  nodeClient(node: never): Promise<RedisStoreClient>
}

/** The client of a Redis deployment: one server (or a Valkey one), or a Redis Cluster. */
export type RedisStoreConnection = RedisStoreClient | RedisStoreCluster

/** Redis is not connected: the command was not sent, and nothing changed. */
export class RedisStoreDisconnectedError extends Error {
  readonly code = 'redis_disconnected'
  override readonly name = 'RedisStoreDisconnectedError'
  constructor() {
    super('Redis is not connected: the idempotency store fails closed until it is back')
  }
}

/**
 * Redis did not answer in time. The command may still run when the server gets to it (a
 * connection answers in order, so its reply is matched and dropped then).
 */
export class RedisStoreTimeoutError extends Error {
  readonly code = 'redis_timeout'
  override readonly name = 'RedisStoreTimeoutError'
  constructor(timeoutMs: number) {
    super(`Redis did not answer within ${String(timeoutMs)} ms`)
  }
}

/** Replies with bulk strings as bytes: a stored body must come back byte for byte. */
const AS_BYTES: TypeMapping = { [RESP_TYPES.BLOB_STRING]: Buffer }

/** How the store talks to its deployment, whichever kind it is. */
export interface RedisCommander {
  readonly ready: boolean
  /** Runs `script` on the node of `key`, sending its source only when the server lacks it. */
  runScript(script: RedisScript, key: string, args: readonly RedisArgument[]): Promise<unknown>
  /**
   * Runs `script` with its source, whatever the server's script cache holds: for a command
   * whose reply may never be read (sent after a timeout, to undo what may have landed), which
   * a `NOSCRIPT` answered to nobody would silently drop.
   */
  runScriptSource(
    script: RedisScript,
    key: string,
    args: readonly RedisArgument[],
  ): Promise<unknown>
  /** Runs a command that names no key (on a cluster: on any node). */
  command(args: readonly RedisArgument[]): Promise<unknown>
  /** A way to send commands to each node that holds keys (a cluster's masters; the server). */
  nodes(): Promise<readonly ((args: readonly RedisArgument[]) => Promise<unknown>)[]>
  /**
   * A new connection for the subscription. On a cluster, to one master: the cluster broadcasts
   * classic publications to every node.
   */
  subscriber(name: string): Promise<RedisSubscriberClient>
}

export function isCluster(connection: RedisStoreConnection): connection is RedisStoreCluster {
  return 'masters' in connection
}

export function createRedisCommander(
  connection: RedisStoreConnection,
  commandTimeoutMs: number,
): RedisCommander {
  const options: RedisCommandOptions = { typeMapping: AS_BYTES }
  // Fail fast: while the connection is down, a command would wait in the client's offline
  // queue (or for a reconnect) and the request with it. It fails at once instead. Once sent, a
  // command has its own deadline: node-redis's `timeout` ends only the wait to be written, and
  // a server that hangs (paused, swapping, a slow script) would hold the request forever.
  const send = (key: string | undefined, args: readonly RedisArgument[]): Promise<unknown> => {
    if (!connection.isReady) return Promise.reject(new RedisStoreDisconnectedError())
    const sent = isCluster(connection)
      ? connection.sendCommand(key, false, args, options)
      : connection.sendCommand(args, options)
    return withDeadline(sent, commandTimeoutMs)
  }
  return {
    get ready() {
      return connection.isReady
    },
    async runScript(script, key, args) {
      const tail = ['1', key, ...args]
      try {
        return await send(key, ['EVALSHA', script.sha1, ...tail])
      } catch (error) {
        // A server that restarted (or a node that never ran it) has no script cache: EVAL
        // sends the source once and caches it for the EVALSHAs after.
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
        return send(key, ['EVAL', script.source, ...tail])
      }
    },
    runScriptSource: (script, key, args) => send(key, ['EVAL', script.source, '1', key, ...args]),
    command: (args) => send(undefined, args),
    async nodes() {
      if (!isCluster(connection)) return [(args) => send(undefined, args)]
      const clients = await Promise.all(
        connection.masters.map((node) => connection.nodeClient(node as never)),
      )
      return clients.map(
        (client) => (args: readonly RedisArgument[]) =>
          client.isReady
            ? withDeadline(client.sendCommand(args, options), commandTimeoutMs)
            : Promise.reject(new RedisStoreDisconnectedError()),
      )
    },
    async subscriber(name) {
      const overrides = { name, disableOfflineQueue: true }
      if (!isCluster(connection)) return connection.duplicate(overrides)
      const [first] = connection.masters
      if (first === undefined) throw new RedisStoreDisconnectedError()
      return (await connection.nodeClient(first as never)).duplicate(overrides)
    },
  }
}

function withDeadline<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new RedisStoreTimeoutError(timeoutMs))
    }, timeoutMs)
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error instanceof Error ? error : new Error(String(error)))
      },
    )
  })
}

/** A reply's text: bulk strings arrive as bytes. */
export function text(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString('utf8')
  if (typeof value === 'string') return value
  if (typeof value === 'number') return String(value)
  throw new TypeError(`unexpected reply from Redis: ${typeof value}`)
}
