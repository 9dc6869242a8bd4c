/**
 * Many requests with one key at once: the operation runs exactly once, and everyone else gets
 * the replay or the documented in-progress 409 (peer bugs 1, 2 and 6 of
 * shared/research/peer-measurements.md).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Answer, SpawnedServer, Subscription, TestServer } from './support/server.js'
import {
  errorOf,
  eventually,
  newKey,
  send,
  sendAndAbandon,
  spansOf,
  spawnServer,
  startServer,
  subscriptionsTo,
  freshDatabase,
  MAIN_JS,
  runNode,
  TEST_DATABASE,
} from './support/server.js'

vi.setConfig({ testTimeout: 60_000, hookTimeout: 30_000 })

const IN_PROGRESS = {
  code: 'already_exists',
  message: 'Request is still in progress. Please retry later.',
}

function create(url: string, key: string, datastreamId: number): Promise<Answer> {
  return send(`${url}/v1/subscriptions`, { key, body: { datastream_id: datastreamId } })
}

/** Every answer is the original's 201, its replay, or the in-progress 409; returns the ids. */
function expectOneOutcome(answers: readonly Answer[]): { ids: Set<string>; originals: number } {
  const ids = new Set<string>()
  let originals = 0
  for (const answer of answers) {
    if (answer.status === 409) {
      expect(errorOf(answer)).toEqual(IN_PROGRESS)
      expect(answer.headers.get('retry-after')).toBe('1')
      continue
    }
    expect(answer.status).toBe(201)
    ids.add(answer.json<Subscription>().id)
    if (answer.headers.get('idempotent-replayed') === null) originals++
  }
  return { ids, originals }
}

describe('one key, many requests at once', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer({ TICKSUPPLY_TEST_HANDLER_DELAY_MS: '200' })
  })
  afterAll(async () => {
    await server.close()
  })

  it('runs the operation once for 100 concurrent requests with one key', async () => {
    const datastream = 11
    const key = newKey()
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => create(server.url, key, datastream)),
    )
    const { ids, originals } = expectOneOutcome(answers)
    expect(server.claims()).toBe(1)
    expect(originals).toBe(1)
    expect(ids.size).toBe(1)
    const subscriptions = await subscriptionsTo(server.url, datastream)
    expect(subscriptions).toHaveLength(1)
    expect(subscriptions[0]!.id).toBe([...ids][0])
    expect(await spansOf(server.url, subscriptions[0]!.id)).toHaveLength(1)
  })

  it('runs the operation once for concurrent requests that mix the four forms of one key', async () => {
    const datastream = 12
    const key = newKey()
    const forms = [key, key.toUpperCase(), key.replaceAll('-', ''), `{${key}}`, `urn:uuid:${key}`]
    const claimsBefore = server.claims()
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, index) =>
        create(server.url, forms[index % forms.length]!, datastream),
      ),
    )
    const { ids, originals } = expectOneOutcome(answers)
    expect(server.claims() - claimsBefore).toBe(1)
    expect(originals).toBe(1)
    expect(ids.size).toBe(1)
    expect(await subscriptionsTo(server.url, datastream)).toHaveLength(1)
  })

  it('never runs the operation again for 50 clients that abort right after sending a replayable request', async () => {
    const datastream = 13
    const key = newKey()
    const claimsBefore = server.claims()
    const original = await create(server.url, key, datastream)
    expect(original.status).toBe(201)
    const replayedBefore = server.counter('replayed')
    await Promise.all(
      Array.from({ length: 50 }, () =>
        sendAndAbandon(server.url, { key, body: { datastream_id: datastream }, afterMs: 0 }),
      ),
    )
    // Give the server time to reach every aborted request it received (bounded).
    await eventually(() => server.counter('replayed') - replayedBefore >= 50, { attempts: 40 })
    const retry = await create(server.url, key, datastream)
    expect(retry.status).toBe(201)
    expect(retry.headers.get('idempotent-replayed')).toBe('true')
    expect(retry.body.equals(original.body)).toBe(true)
    expect(server.claims() - claimsBefore).toBe(1)
    const subscriptions = await subscriptionsTo(server.url, datastream)
    expect(subscriptions).toHaveLength(1)
    expect(await spansOf(server.url, subscriptions[0]!.id)).toHaveLength(1)
  })

  it('never runs the operation again for 50 clients that abort while the original still runs', async () => {
    const datastream = 14
    const key = newKey()
    const claimsBefore = server.claims()
    const pending = create(server.url, key, datastream)
    expect(await eventually(() => server.claims() > claimsBefore)).toBe(true)
    await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        sendAndAbandon(server.url, {
          key,
          body: { datastream_id: datastream },
          afterMs: index % 3,
        }),
      ),
    )
    const original = await pending
    expect(original.status).toBe(201)
    const retry = await create(server.url, key, datastream)
    expect(retry.status).toBe(201)
    expect(retry.headers.get('idempotent-replayed')).toBe('true')
    expect(server.claims() - claimsBefore).toBe(1)
    expect(await subscriptionsTo(server.url, datastream)).toHaveLength(1)
  })

  it('runs each of 30 distinct keys once when all are sent twice at once', async () => {
    const claimsBefore = server.claims()
    const work = Array.from({ length: 30 }, (_, index) => ({
      key: newKey(),
      datastream: 20 + index,
    }))
    const answers = await Promise.all(
      work.flatMap(({ key, datastream }) => [
        create(server.url, key, datastream),
        create(server.url, key, datastream),
      ]),
    )
    for (let index = 0; index < work.length; index++) {
      const pair = [answers[2 * index]!, answers[2 * index + 1]!]
      const { ids, originals } = expectOneOutcome(pair)
      expect(originals).toBe(1)
      expect(ids.size).toBe(1)
    }
    expect(server.claims() - claimsBefore).toBe(30)
  })
})

if (TEST_DATABASE === 'postgres') {
  describe('one key, two server processes on one PostgreSQL database', () => {
    let database: Awaited<ReturnType<typeof freshDatabase>>
    let servers: SpawnedServer[] = []

    beforeAll(async () => {
      database = await freshDatabase()
      const env = { DATABASE_URL: database.url, TICKSUPPLY_TEST_HANDLER_DELAY_MS: '200' }
      // The first one creates the schema; the second finds it.
      const first = await spawnServer(env)
      servers = [first, await spawnServer(env)]
    })
    afterAll(async () => {
      for (const server of servers) {
        server.kill('SIGTERM')
        await server.exited
      }
      database.cleanup()
    })

    async function claimsOf(server: SpawnedServer): Promise<number> {
      const text = (await send(`${server.url}/metrics`, { apiKey: null })).text
      let total = 0
      for (const name of ['claims', 'claims_takeover']) {
        const match = new RegExp(`^ticksupply_idempotency_${name}_total (\\d+)$`, 'm').exec(text)
        total += Number(match?.[1] ?? 0)
      }
      return total
    }

    it('runs the operation once for 60 concurrent requests split across both processes', async () => {
      const datastream = 101
      const key = newKey()
      const answers = await Promise.all(
        Array.from({ length: 60 }, (_, index) => create(servers[index % 2]!.url, key, datastream)),
      )
      const { ids, originals } = expectOneOutcome(answers)
      expect(originals).toBe(1)
      expect(ids.size).toBe(1)
      const claims = await Promise.all(servers.map(claimsOf))
      expect(claims[0]! + claims[1]!).toBe(1)
      expect(await subscriptionsTo(servers[0]!.url, datastream)).toHaveLength(1)
    })
  })
} else {
  describe('two server processes on one SQLite file', () => {
    it('refuses to start the second one, naming the owner, while the first serves on', async () => {
      const database = await freshDatabase()
      const first = await spawnServer({ DATABASE_URL: database.url })
      try {
        const { code, stderr, stdout } = await runNode(MAIN_JS, [], {
          DATABASE_URL: database.url,
          LOG_LEVEL: 'silent',
          PORT: '0',
        })
        expect(code).toBe(2)
        expect(stdout).not.toContain('listening')
        expect(stderr).toContain(`Process ${String(first.child.pid)} `)
        expect(stderr).toContain('owns the idempotency records')
        expect(stderr).not.toMatch(/\n\s+at /)
        const key = newKey()
        expect((await create(first.url, key, 102)).status).toBe(201)
      } finally {
        first.kill('SIGTERM')
        await first.exited
        database.cleanup()
      }
    })
  })
}
