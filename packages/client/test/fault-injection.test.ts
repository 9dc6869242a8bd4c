import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createClient } from '../src/index.js'
import type { Subscription, TicksupplyClient } from '../src/index.js'
import type { Fault, FaultProxy } from './support/fault-proxy.js'
import { startFaultProxy } from './support/fault-proxy.js'
import type { RunningServer } from './support/server-process.js'
import { startServer } from './support/server-process.js'

/**
 * The "done means": 1,000 logical creates through a proxy that breaks 30% of the
 * exchanges end with exactly 1,000 resources, none doubled, none lost.
 */

const ACCOUNTS = Array.from({ length: 10 }, (_, index) => `faults${String(index)}`)
const CREATES_PER_ACCOUNT = 100
const CONCURRENCY = 40
const FAULTS: readonly Fault[] = ['reset-before', 'drop-response', 'delay', 'respond-503']

/** A small seeded generator (mulberry32), so that a failing run can be replayed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

let server: RunningServer
let proxy: FaultProxy

beforeAll(async () => {
  server = await startServer({ accounts: ACCOUNTS })
  const random = seededRandom(20261129)
  proxy = await startFaultProxy({
    targetPort: server.port,
    delayMs: 30,
    chooseFault: () =>
      random() < 0.3 ? (FAULTS[Math.floor(random() * FAULTS.length)] ?? 'pass') : 'pass',
  })
})

afterAll(async () => {
  await proxy.close()
  await server.stop()
})

function apiKeyOf(account: string): string {
  const key = server.apiKeys.get(account)
  if (key === undefined) throw new Error(`no key for ${account}`)
  return key
}

/** A client that talks to the server directly, to count what exists. */
function directClient(account: string): TicksupplyClient {
  return createClient({ apiKey: apiKeyOf(account), baseUrl: server.baseUrl })
}

/** Runs the tasks with at most `limit` at a time, in order of the array. */
async function pool<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = []
  let next = 0
  async function worker(): Promise<void> {
    while (next < tasks.length) {
      const index = next++
      const task = tasks[index]
      if (task !== undefined) results[index] = await task()
    }
  }
  await Promise.all(Array.from({ length: limit }, worker))
  return results
}

describe('1,000 creates through a proxy that breaks 30% of the exchanges', () => {
  it('end with exactly 1,000 subscriptions, none doubled, none lost', async () => {
    const datastreamIds: number[] = []
    for await (const datastream of directClient(ACCOUNTS[0] ?? '').datastreams.iterate({
      limit: 1000,
    })) {
      datastreamIds.push(datastream.datastream_id)
    }
    expect(datastreamIds.length).toBeGreaterThanOrEqual(CREATES_PER_ACCOUNT)

    const tasks = ACCOUNTS.flatMap((account, accountIndex) => {
      const client = createClient({
        apiKey: apiKeyOf(account),
        baseUrl: proxy.url,
        timeoutMs: 10_000,
        deadlineMs: 50_000,
        retry: { maxAttempts: 15, baseDelayMs: 2, maxDelayMs: 50 },
      })
      // Each account subscribes to its own run of distinct datastreams.
      return Array.from({ length: CREATES_PER_ACCOUNT }, (_, index) => {
        const datastreamId = datastreamIds[(accountIndex * 37 + index) % datastreamIds.length] ?? 0
        return async () => ({
          account,
          datastreamId,
          subscription: await client.subscriptions.create({ datastream_id: datastreamId }),
        })
      })
    })

    const created = await pool(tasks, CONCURRENCY)

    // Every call came back with its own resource.
    expect(created).toHaveLength(ACCOUNTS.length * CREATES_PER_ACCOUNT)
    for (const { datastreamId, subscription } of created) {
      expect(subscription.datastream_id).toBe(datastreamId)
    }
    const createdIds = new Set(created.map(({ subscription }) => subscription.id))
    expect(createdIds.size).toBe(1000)

    // The server holds exactly those 1,000 and nothing else.
    const listed: Subscription[] = []
    for (const account of ACCOUNTS) {
      const mine: Subscription[] = []
      for await (const subscription of directClient(account).subscriptions.iterate({
        limit: 100,
      })) {
        mine.push(subscription)
      }
      expect(mine).toHaveLength(CREATES_PER_ACCOUNT)
      listed.push(...mine)
    }
    expect(new Set(listed.map((subscription) => subscription.id))).toEqual(createdIds)

    // The faults really happened, and every kind of them.
    for (const fault of FAULTS) expect(proxy.count(fault)).toBeGreaterThan(20)
    const faulted = proxy.requests.filter((request) => request.fault !== 'pass').length
    expect(faulted).toBeGreaterThan(0.2 * proxy.requests.length)

    // One key per logical operation, reused by each of its retries; the server ran each
    // operation exactly once (one original 201) and replayed it to every later attempt.
    const byKey = new Map<string, typeof proxy.requests>()
    for (const request of proxy.requests) {
      expect(request.idempotencyKey).toBeDefined()
      const key = request.idempotencyKey ?? ''
      byKey.set(key, [...(byKey.get(key) ?? []), request])
    }
    expect(byKey.size).toBe(1000)
    let replays = 0
    for (const requests of byKey.values()) {
      const answered = requests.filter((request) => request.upstreamStatus === 201)
      expect(answered.filter((request) => request.upstreamReplayed === false)).toHaveLength(1)
      replays += answered.filter((request) => request.upstreamReplayed === true).length
    }
    expect(replays).toBeGreaterThanOrEqual(proxy.count('drop-response'))
  })
})
