/**
 * Crash safety: the server process is SIGKILLed mid-operation or right after its commit, and a
 * new process on the same SQLite file must let the retry run exactly once (the claim lived in
 * the dead process's memory) or replay what was committed (write and stored response commit
 * together).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Answer, SpawnedServer, Subscription } from './support/server.js'
import {
  REQUEST_ID,
  errorOf,
  eventually,
  newKey,
  send,
  spansOf,
  spawnServer,
  subscriptionsTo,
  tempDatabase,
} from './support/server.js'

vi.setConfig({ testTimeout: 60_000, hookTimeout: 30_000 })

const running: SpawnedServer[] = []
const databases: ReturnType<typeof tempDatabase>[] = []

afterEach(async () => {
  for (const server of running.splice(0)) {
    server.kill('SIGKILL')
    await server.exited
  }
  for (const database of databases.splice(0)) database.cleanup()
})

async function start(
  env: Record<string, string> & { DATABASE_URL: string },
): Promise<SpawnedServer> {
  const server = await spawnServer(env)
  running.push(server)
  return server
}

async function metric(server: SpawnedServer, name: string): Promise<number> {
  const text = (await send(`${server.url}/metrics`, { apiKey: null })).text
  const match = new RegExp(`^ticksupply_idempotency_${name}_total (\\d+)$`, 'm').exec(text)
  return Number(match?.[1] ?? 0)
}

/** Sends a keyed create whose connection is expected to die with the process. */
function createExpectingCrash(url: string, key: string, datastreamId: number) {
  return send(`${url}/v1/subscriptions`, { key, body: { datastream_id: datastreamId } }).then(
    (answer) => ({ answered: true as const, answer }),
    (error: unknown) => ({ answered: false as const, error }),
  )
}

/** Retries the create with the key until it is not "still in progress"; at most `attempts`. */
async function retryUntilAnswered(url: string, key: string, datastreamId: number, attempts = 20) {
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const answer: Answer = await send(`${url}/v1/subscriptions`, {
      key,
      body: { datastream_id: datastreamId },
    })
    const inProgress =
      answer.status === 409 &&
      errorOf(answer).message === 'Request is still in progress. Please retry later.'
    if (!inProgress) return { answer, attempt }
    await sleep(250)
  }
  throw new Error(`the key was still in progress after ${String(attempts)} attempts`)
}

describe('a crash while the operation runs', () => {
  it('runs the retry on a restarted server at once, since the claim died with its process, and runs it once', async () => {
    const database = tempDatabase()
    databases.push(database)
    const datastream = 7
    const key = newKey()
    const doomed = await start({
      DATABASE_URL: database.url,
      // A long lease: if the claim were a lease, the retry would wait it out and fail here.
      IDEMPOTENCY_LEASE_MS: '600000',
      TICKSUPPLY_TEST_HANDLER_DELAY_MS: '2000',
    })
    const pending = createExpectingCrash(doomed.url, key, datastream)
    expect(await eventually(async () => (await metric(doomed, 'claims')) === 1)).toBe(true)
    await sleep(300)
    doomed.kill('SIGKILL')
    expect((await doomed.exited).signal).toBe('SIGKILL')
    const lost = await pending
    expect(lost.answered).toBe(false)

    const restarted = await start({ DATABASE_URL: database.url })
    const { answer, attempt } = await retryUntilAnswered(restarted.url, key, datastream)
    expect(answer.status).toBe(201)
    expect(answer.headers.get('idempotent-replayed')).toBeNull()
    expect(answer.json<Subscription>().datastream_id).toBe(datastream)
    // The very first retry runs: nothing of the dead process is in progress.
    expect(attempt).toBe(1)
    expect(await metric(restarted, 'claims')).toBe(1)

    const subscriptions = await subscriptionsTo(restarted.url, datastream)
    expect(subscriptions).toHaveLength(1)
    expect(await spansOf(restarted.url, subscriptions[0]!.id)).toHaveLength(1)
    // And from now on the key replays.
    const replay = await send(`${restarted.url}/v1/subscriptions`, {
      key,
      body: { datastream_id: datastream },
    })
    expect(replay.status).toBe(201)
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect(replay.body.equals(answer.body)).toBe(true)
  })
})

describe('a crash right after the commit', () => {
  it('replays the committed answer to the retry on a restarted server instead of running again', async () => {
    const database = tempDatabase()
    databases.push(database)
    const datastream = 9
    const key = newKey()
    const doomed = await start({
      DATABASE_URL: database.url,
      TICKSUPPLY_TEST_EXIT_AFTER_COMMIT: '1',
    })
    const lost = await createExpectingCrash(doomed.url, key, datastream)
    expect(lost.answered).toBe(false)
    expect((await doomed.exited).signal).toBe('SIGKILL')

    const restarted = await start({ DATABASE_URL: database.url })
    const { answer, attempt } = await retryUntilAnswered(restarted.url, key, datastream)
    expect(attempt).toBe(1)
    expect(answer.status).toBe(201)
    expect(answer.headers.get('idempotent-replayed')).toBe('true')
    expect(answer.headers.get('original-request')).toMatch(REQUEST_ID)
    expect(answer.headers.get('original-request')).not.toBe(answer.headers.get('x-request-id'))
    expect(answer.json<Subscription>().datastream_id).toBe(datastream)
    expect(await metric(restarted, 'claims')).toBe(0)
    const subscriptions = await subscriptionsTo(restarted.url, datastream)
    expect(subscriptions).toHaveLength(1)
    expect(subscriptions[0]!.id).toBe(answer.json<Subscription>().id)
    expect(await spansOf(restarted.url, subscriptions[0]!.id)).toHaveLength(1)
  })

  it('replays a committed pause (204) too: the retry does not pause again', async () => {
    const database = tempDatabase()
    databases.push(database)
    const setup = await start({ DATABASE_URL: database.url })
    const created = await send(`${setup.url}/v1/subscriptions`, { body: { datastream_id: 3 } })
    expect(created.status).toBe(201)
    const id = created.json<Subscription>().id
    setup.kill('SIGTERM')
    await setup.exited

    const key = newKey()
    const doomed = await start({
      DATABASE_URL: database.url,
      TICKSUPPLY_TEST_EXIT_AFTER_COMMIT: '1',
    })
    const lost = await send(`${doomed.url}/v1/subscriptions/${id}/pause`, {
      method: 'POST',
      key,
    }).then(
      () => true,
      () => false,
    )
    expect(lost).toBe(false)
    await doomed.exited

    const restarted = await start({ DATABASE_URL: database.url })
    const retry = await send(`${restarted.url}/v1/subscriptions/${id}/pause`, {
      method: 'POST',
      key,
    })
    expect(retry.status).toBe(204)
    expect(retry.headers.get('idempotent-replayed')).toBe('true')
    const spans = await spansOf(restarted.url, id)
    expect(spans).toHaveLength(1)
    expect(spans[0]!.ended_at).not.toBeNull()
  })
})
