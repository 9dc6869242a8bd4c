import { randomUUID } from 'node:crypto'
import type { Clock } from '../../core/clock.js'
import type { StoredResponse } from '../../core/record.js'
import type { ClaimOutcome, ClaimRef, ClaimRequest, Store } from '../../core/store.js'
import type { CompletedCacheOptions, CompletedCacheStats } from '../completed-cache.js'
import { createCompletedCache } from '../completed-cache.js'
import { createLocalClaims } from '../local-claims.js'
import { createSettleListeners, recordId } from '../settle-listeners.js'
import type { RedisStoreConnection } from './redis-connection.js'
import { createRedisCommander, RedisStoreDisconnectedError, text } from './redis-connection.js'
import { createRedisKeys } from './redis-keys.js'
import { checkMemoryPolicy } from './redis-memory-policy.js'
import {
  CLAIM_SCRIPT,
  COMPLETE_SCRIPT,
  PURGE_SCRIPT,
  RELEASE_SCRIPT,
  RENEW_SCRIPT,
} from './redis-scripts.js'
import { startSettleChannel } from './redis-settle-channel.js'

export interface RedisStoreOptions extends CompletedCacheOptions {
  /**
   * A connected node-redis client (`createClient()`) or cluster client (`createCluster()`).
   * The store runs its scripts on it and subscribes on a duplicate; it never closes it. Give it
   * an `error` listener: node-redis throws an unheard `error` event.
   */
  readonly client: RedisStoreConnection
  /**
   * Starts the name of every record's key. No braces (they would choose the cluster slot).
   * @default 'ticksupply:idempotency:'
   */
  readonly prefix?: string
  /**
   * The pub/sub channel completions are published on.
   * @default `${prefix}settled`
   */
  readonly channel?: string
  /**
   * Lease and expiry arithmetic runs on the Redis server's clock (`TIME`), the one clock every
   * instance shares, and records expire by Redis's own TTL. A clock given here replaces it (its
   * time is passed into each script): for tests only.
   */
  readonly clock?: Clock
  /**
   * How long a command may wait for Redis before it fails (and the request with it, closed:
   * 503). While the connection is down, commands fail at once without being sent.
   * @default 2_000
   */
  readonly commandTimeoutMs?: number
  /**
   * While the subscription is down, how often waiters look at their record themselves.
   * @default 250
   */
  readonly fallbackPollMs?: number
  /**
   * Where warnings go: an evicting `maxmemory-policy`, a dropped subscription.
   * @default console.warn
   */
  readonly onWarning?: (message: string) => void
}

export interface RedisStore extends Store {
  /**
   * Names this store instance: its publications carry it, and its subscriber connection is
   * called `ticksupply-idempotency-<instanceId>` (in `CLIENT LIST`).
   */
  readonly instanceId: string
  /** Whether completions on other instances wake this one's waiters at once (pub/sub is up). */
  readonly subscribed: boolean
  /** The server's `maxmemory-policy` as read at start; undefined when it could not be read. */
  readonly memoryPolicy: string | undefined
  /** Claims this instance holds right now. */
  readonly inProgress: number
  readonly cache: () => CompletedCacheStats
  /** The Redis key of the record at (scope, key). */
  keyOf(scope: string, key: string): string
  /** Stops listening for completions and closes the subscriber connection (not the client). */
  close(): Promise<void>
}

const IN_PROGRESS = { kind: 'in_progress' } as const
const MISMATCH = { kind: 'mismatch' } as const

/**
 * Idempotency records in Redis (or Valkey, or a Redis Cluster), for APIs whose resources live
 * in a database of their own.
 *
 * A claim is a lease: the record carries its holder's token and the lease's end, and the
 * engine renews every claim of the process on one timer. A holder that dies frees its key when
 * its lease lapses. Claim, takeover, renewal, completion and release are each one Lua script:
 * the decision and the write happen in one atomic step on the server, compare-and-set on the
 * token, on the server's clock. Records expire by Redis's native TTL. Completions are published
 * on a channel, so waiters on every instance wake at once.
 *
 * Nothing here is atomic with the operation's own writes (they live elsewhere): an operation
 * whose effects committed but whose completion did not reach Redis runs again on retry.
 */
export async function createRedisStore(options: RedisStoreOptions): Promise<RedisStore> {
  const keys = createRedisKeys(options.prefix ?? 'ticksupply:idempotency:')
  const channel = options.channel ?? `${keys.prefix}settled`
  const commandTimeoutMs = positive('commandTimeoutMs', options.commandTimeoutMs, 2_000)
  const fallbackPollMs = positive('fallbackPollMs', options.fallbackPollMs, 250)
  const warn =
    options.onWarning ??
    ((message: string) => {
      console.warn(message)
    })
  const clock = options.clock
  const commander = createRedisCommander(options.client, commandTimeoutMs)
  const cache = createCompletedCache(options)
  const listeners = createSettleListeners()
  const claims = createLocalClaims()
  /** When each local claim's lease ends as last granted, on the server's clock. */
  const leaseEnds = new Map<string, number>()
  /** How many waiters each record has here, so that all of them can be woken. */
  const watched = new Map<string, number>()
  const instanceId = randomUUID()
  // Publications carry who sent them: `<origin> <record id>`.
  const origin = `${instanceId} `

  // The server's clock as this process estimates it, from the latest script that read it: the
  // estimate runs slightly ahead (it includes the trip there), so neither a cached record nor a
  // local claim is trusted past its time.
  let clockOffsetMs = 0
  const serverNow = (): number => clock?.now() ?? Date.now() + clockOffsetMs
  const learnClock = (nowMs: unknown, sentAt: number) => {
    if (clock === undefined) clockOffsetMs = Number(nowMs) - sentAt
  }
  const testNow = (): string => (clock === undefined ? '' : String(clock.now()))

  if (!commander.ready) throw new RedisStoreDisconnectedError()
  const memoryPolicy = await checkMemoryPolicy(commander, warn)

  const wakeAll = () => {
    for (const id of watched.keys()) listeners.notifyId(id)
  }
  const settleChannel = await startSettleChannel({
    commander,
    channel,
    origin,
    name: `ticksupply-idempotency-${instanceId}`,
    wake: (id) => {
      listeners.notifyId(id)
    },
    wakeAll,
    fallbackPollMs,
    onDown: (cause) => {
      warn(
        `@ticksupply/idempotency: the Redis subscription dropped (${cause instanceof Error ? cause.message : String(cause)}); waiters poll until it is back`,
      )
    },
  })

  /** What this process knows without asking: its own live claims, and cached completions. */
  function answerLocally(id: string, request: ClaimRequest): ClaimOutcome | undefined {
    const held = claims.get(id)
    if (held !== undefined && (leaseEnds.get(id) ?? 0) > serverNow()) {
      return held.fingerprint === request.fingerprint ? IN_PROGRESS : MISMATCH
    }
    const cached = cache.get(id, serverNow())
    if (cached === undefined) return undefined
    return cached.fingerprint === request.fingerprint
      ? { kind: 'replay', response: cached.response }
      : MISMATCH
  }

  /** The claim is no longer this process's to hold. */
  const forget = (id: string, token: string) => {
    if (claims.delete(id, token)) leaseEnds.delete(id)
  }

  async function claim(request: ClaimRequest): Promise<ClaimOutcome> {
    const id = recordId(request.scope, request.key)
    const early = answerLocally(id, request)
    if (early !== undefined) return early
    const redisKey = keys.record(request.scope, request.key)
    const sentAt = Date.now()
    let reply: unknown[]
    try {
      reply = (await commander.runScript(CLAIM_SCRIPT, redisKey, [
        testNow(),
        request.fingerprint,
        request.token,
        String(request.leaseMs),
        String(request.ttlMs),
      ])) as unknown[]
    } catch (error) {
      // A claim whose answer never came may still have landed: give it back by token, so that
      // it does not hold the key for a lease. Redis runs the release after the claim (one
      // connection, in order); when the claim did not land, the release matches nothing. Its
      // source goes with it: its reply is likely lost too, and with it a NOSCRIPT.
      if (!(error instanceof RedisStoreDisconnectedError)) {
        commander
          .runScriptSource(RELEASE_SCRIPT, redisKey, [
            testNow(),
            request.token,
            channel,
            origin + id,
          ])
          .catch(() => undefined)
      }
      throw error
    }
    const kind = text(reply[0])
    const now = Number(reply[1])
    learnClock(now, sentAt)
    switch (kind) {
      case 'claimed':
      case 'takeover': {
        claims.add(id, {
          scope: request.scope,
          key: request.key,
          fingerprint: request.fingerprint,
          token: request.token,
          expiresAt: Number(reply[2]),
        })
        leaseEnds.set(id, now + request.leaseMs)
        return { kind: 'claimed', takeover: kind === 'takeover' }
      }
      case 'replay': {
        const response: StoredResponse = {
          status: Number(text(reply[3])),
          headers: JSON.parse(text(reply[4])) as Record<string, string>,
          body: Buffer.isBuffer(reply[5]) ? reply[5] : Buffer.from(text(reply[5])),
          requestId: text(reply[6]),
        }
        // Completed records never change until they expire: safe to keep, on the server's
        // clock (converted through the offset just learnt).
        cache.set(id, {
          fingerprint: request.fingerprint,
          response,
          expiresAt: Number(reply[2]),
        })
        return { kind: 'replay', response }
      }
      case 'mismatch':
        return MISMATCH
      case 'in_progress':
        return IN_PROGRESS
      default:
        throw new Error(`unexpected answer from the claim script: ${kind}`)
    }
  }

  // The purge walks this store's keys with SCAN, a page at a time, keeping its place between
  // calls. Redis deletes expired records by itself (native TTL); what the walk finds are
  // records expired on a test clock, which Redis cannot follow.
  let sweep: { cursors: string[]; node: number; pending: string[] } | undefined

  async function purgeExpired(limit: number): Promise<number> {
    const nodes = await commander.nodes()
    sweep ??= { cursors: nodes.map(() => '0'), node: 0, pending: [] }
    let deleted = 0
    let pages = 0
    while (deleted < limit) {
      if (sweep.pending.length === 0) {
        // A sweep ends when every node's cursor came back to 0; then this call ends too.
        if (sweep.node >= nodes.length || pages >= MAX_SCAN_PAGES_PER_PURGE) break
        const node = nodes[sweep.node]
        if (node === undefined) break
        const page = (await node([
          'SCAN',
          sweep.cursors[sweep.node] ?? '0',
          'MATCH',
          keys.pattern,
          'COUNT',
          String(Math.max(limit, 100)),
        ])) as [unknown, unknown[]]
        pages++
        const cursor = text(page[0])
        sweep.cursors[sweep.node] = cursor
        if (cursor === '0') sweep.node++
        sweep.pending.push(...page[1].map(text))
        continue
      }
      const batch = sweep.pending.splice(0, limit - deleted)
      const results = await Promise.all(
        batch.map((redisKey) => commander.runScript(PURGE_SCRIPT, redisKey, [testNow()])),
      )
      deleted += results.filter((result) => Number(result) === 1).length
    }
    if (sweep.pending.length === 0 && sweep.node >= nodes.length) sweep = undefined
    return deleted
  }

  return {
    claimLifetime: 'lease',
    claim,
    async renew(ref, leaseMs) {
      const id = recordId(ref.scope, ref.key)
      const sentAt = Date.now()
      const reply = (await commander.runScript(RENEW_SCRIPT, keys.record(ref.scope, ref.key), [
        testNow(),
        ref.token,
        String(leaseMs),
      ])) as unknown[]
      const now = Number(reply[1])
      learnClock(now, sentAt)
      if (Number(reply[0]) !== 1) {
        forget(id, ref.token)
        return false
      }
      if (claims.get(id)?.token === ref.token) leaseEnds.set(id, now + leaseMs)
      return true
    },
    async complete(ref: ClaimRef, response: StoredResponse) {
      const id = recordId(ref.scope, ref.key)
      const sentAt = Date.now()
      const reply = (await commander.runScript(COMPLETE_SCRIPT, keys.record(ref.scope, ref.key), [
        testNow(),
        ref.token,
        String(response.status),
        JSON.stringify(response.headers),
        Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength),
        response.requestId,
        channel,
        origin + id,
      ])) as unknown[]
      forget(id, ref.token)
      if (Number(reply[0]) !== 1) return false
      learnClock(reply[3], sentAt)
      // Committed: the script's write is the record. The cache learns it now.
      cache.set(id, { fingerprint: text(reply[1]), response, expiresAt: Number(reply[2]) })
      listeners.notifyId(id)
      return true
    },
    async release(ref) {
      const id = recordId(ref.scope, ref.key)
      // Whatever Redis says, the claim is over for this process.
      forget(id, ref.token)
      const released = await commander.runScript(RELEASE_SCRIPT, keys.record(ref.scope, ref.key), [
        testNow(),
        ref.token,
        channel,
        origin + id,
      ])
      if (Number(released) !== 1) return false
      listeners.notifyId(id)
      return true
    },
    onSettled(scope, key, listener) {
      const id = recordId(scope, key)
      watched.set(id, (watched.get(id) ?? 0) + 1)
      const unsubscribe = listeners.subscribe(scope, key, listener)
      let subscribed = true
      return () => {
        if (!subscribed) return
        subscribed = false
        unsubscribe()
        const left = (watched.get(id) ?? 1) - 1
        if (left === 0) watched.delete(id)
        else watched.set(id, left)
      }
    },
    purgeExpired,
    instanceId,
    get subscribed() {
      return settleChannel.subscribed
    },
    memoryPolicy,
    get inProgress() {
      return claims.size
    },
    cache: () => cache.stats(),
    keyOf: (scope, key) => keys.record(scope, key),
    close() {
      settleChannel.stop()
      return Promise.resolve()
    },
  }
}

/** A purge call reads at most this many SCAN pages: its time stays bounded on a big keyspace. */
const MAX_SCAN_PAGES_PER_PURGE = 10

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`Expected \`${name}\` to be a positive integer, got ${String(value)}.`)
  }
  return value
}
