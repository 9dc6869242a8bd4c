/**
 * Graceful shutdown of a real server process on SIGTERM: new requests are refused, requests in
 * flight finish and store their answers within the grace period, operations that cannot finish
 * are rolled back with their keys released, the export worker hands its job back, and after a
 * restart no key is left claimed and no answer a client received is lost.
 */
import { connect } from 'node:net'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Answer, SpawnedServer } from './support/server.js'
import {
  ACME_KEY,
  errorOf,
  eventually,
  freshDatabase,
  listSubscriptions,
  newKey,
  queryDatabase,
  sampleValue,
  send,
  spawnServer,
} from './support/server.js'
import { EXPORT_ENV, startRunningExport, waitForExport } from './support/exports-helpers.js'

const running: SpawnedServer[] = []
const cleanups: (() => void)[] = []

afterEach(async () => {
  for (const server of running.splice(0)) {
    server.kill('SIGKILL')
    await server.exited
  }
  for (const cleanup of cleanups.splice(0)) cleanup()
})

async function database(): Promise<{ url: string; dir: string }> {
  const fresh = await freshDatabase()
  cleanups.push(fresh.cleanup)
  return fresh
}

async function start(env: Record<string, string> & { DATABASE_URL: string }) {
  const server = await spawnServer(env)
  running.push(server)
  return server
}

/** A keyed create's result as its client saw it: an answer, or no answer at all. */
type Outcome = { readonly answer: Answer } | { readonly error: string }

function create(url: string, key: string, datastreamId: number): Promise<Outcome> {
  return send(`${url}/v1/subscriptions`, { key, body: { datastream_id: datastreamId } }).then(
    (answer) => ({ answer }),
    (error: unknown) => ({ error: String(error) }),
  )
}

/** A raw keep-alive connection that reads the answers to the requests written on it. */
function openConnection(url: string): {
  write(text: string): void
  /** Resolves once what was written so far has been handed to the kernel. */
  written(): Promise<void>
  answers(count: number): Promise<(Answer | undefined)[]>
} {
  const socket = connect(Number(new URL(url).port), '127.0.0.1')
  let received = Buffer.alloc(0)
  let closed = false
  const changed: (() => void)[] = []
  const notify = () => {
    for (const fn of changed.splice(0)) fn()
  }
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk])
    notify()
  })
  socket.on('close', () => {
    closed = true
    notify()
  })
  socket.on('error', () => undefined)
  /** Takes one complete answer off the front of what was received, if there is one. */
  const take = (): Answer | undefined => {
    const end = received.indexOf('\r\n\r\n')
    if (end === -1) return undefined
    const [statusLine = '', ...lines] = received.subarray(0, end).toString('latin1').split('\r\n')
    const headers = new Headers()
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim())
    }
    const length = Number(headers.get('content-length') ?? 0)
    if (received.length < end + 4 + length) return undefined
    const body = received.subarray(end + 4, end + 4 + length)
    received = received.subarray(end + 4 + length)
    const text = body.toString('utf8')
    return {
      status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0),
      headers,
      body: Buffer.from(body),
      text,
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed JSON.parse
      json: <T>() => JSON.parse(text) as T,
    }
  }
  return {
    write: (text) => socket.write(text),
    written: () =>
      new Promise<void>((resolve) => {
        socket.write('', () => {
          resolve()
        })
      }),
    async answers(count) {
      const answers: (Answer | undefined)[] = []
      while (answers.length < count) {
        const answer = take()
        if (answer !== undefined) {
          answers.push(answer)
          continue
        }
        if (closed) {
          answers.push(undefined)
          continue
        }
        await new Promise<void>((resolve) => changed.push(resolve))
      }
      socket.destroy()
      return answers
    },
  }
}

async function inProgress(server: SpawnedServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  return sampleValue(text, 'ticksupply_idempotency_in_progress')
}

async function terminate(server: SpawnedServer) {
  server.kill('SIGTERM')
  return server.exited
}

/**
 * After a restart: every key's retry answers at once (never "still in progress": no key was
 * left claimed), with 201; a client that had received a 201 gets the same bytes back.
 * Resolves the retries' answers.
 */
async function expectEveryKeySettled(
  url: string,
  keys: readonly string[],
  outcomes: readonly Outcome[],
): Promise<Answer[]> {
  const retries: Answer[] = []
  for (const [index, key] of keys.entries()) {
    const retry = await send(`${url}/v1/subscriptions`, {
      key,
      body: { datastream_id: index + 1 },
    })
    expect(retry.status, `${key}: ${retry.text}`).toBe(201)
    const before = outcomes[index]
    if (before !== undefined && 'answer' in before && before.answer.status === 201) {
      expect(retry.headers.get('idempotent-replayed'), key).toBe('true')
      expect(retry.body.equals(before.answer.body), key).toBe(true)
    }
    retries.push(retry)
  }
  return retries
}

/** One subscription per key's datastream, and the one each retry's answer names. */
async function expectOneRunPerKey(url: string, retries: readonly Answer[]): Promise<void> {
  const subscriptions = await listSubscriptions(url)
  const byDatastream = new Map<number, string[]>()
  for (const sub of subscriptions)
    byDatastream.set(sub.datastream_id, [...(byDatastream.get(sub.datastream_id) ?? []), sub.id])
  for (const [index, retry] of retries.entries()) {
    expect(byDatastream.get(index + 1), `datastream ${String(index + 1)}`).toEqual([
      retry.json<{ id: string }>().id,
    ])
  }
  expect(subscriptions).toHaveLength(retries.length)
}

describe('graceful shutdown on SIGTERM', () => {
  it('lets operations in flight finish and store their answers, refuses new work, exits 0', async () => {
    const db = await database()
    const server = await start({
      DATABASE_URL: db.url,
      TICKSUPPLY_TEST_HANDLER_DELAY_MS: '1500',
      SHUTDOWN_GRACE_MS: '20000',
      LOG_LEVEL: 'info',
    })
    const keys = Array.from({ length: 20 }, () => newKey())
    const pending = keys.map((key, index) => create(server.url, key, index + 1))
    expect(await eventually(async () => (await inProgress(server)) === keys.length)).toBe(true)
    // A request whose head is still arriving when the signal comes: its connection is busy, so
    // it stays open, and the request reaches the server while it drains.
    const connection = openConnection(server.url)
    connection.write(`GET /v1/exchanges HTTP/1.1\r\nHost: 127.0.0.1\r\n`)
    await connection.written()

    const exited = terminate(server)
    expect(await eventually(() => server.stdout().includes('SIGTERM: shutting down'))).toBe(true)
    connection.write(`X-Api-Key: ${ACME_KEY}\r\n\r\n`)
    const [refused] = await connection.answers(1)

    const outcomes = await Promise.all(pending)
    for (const outcome of outcomes) {
      expect('answer' in outcome ? outcome.answer.status : outcome.error).toBe(201)
      // Answers written while draining end their connections.
      if ('answer' in outcome) expect(outcome.answer.headers.get('connection')).toBe('close')
    }
    expect(refused?.status).toBe(503)
    expect(refused?.headers.get('connection')).toBe('close')
    expect(refused === undefined ? undefined : errorOf(refused)).toEqual({
      code: 'unavailable',
      message: 'The server is shutting down. Please retry.',
    })
    expect(await exited).toEqual({ code: 0, signal: null })
    expect(server.stdout()).toContain('"msg":"shutdown complete"')

    const restarted = await start({ DATABASE_URL: db.url })
    const retries = await expectEveryKeySettled(restarted.url, keys, outcomes)
    await expectOneRunPerKey(restarted.url, retries)
  })

  it('aborts what cannot finish within the grace period: answered 503, rolled back, keys released', async () => {
    const db = await database()
    const server = await start({
      DATABASE_URL: db.url,
      // Longer than the grace period and the second aborted operations get to settle: the 503
      // is the shutdown's to send, not the operations'.
      TICKSUPPLY_TEST_HANDLER_DELAY_MS: '4000',
      SHUTDOWN_GRACE_MS: '100',
    })
    const keys = Array.from({ length: 10 }, () => newKey())
    const pending = keys.map((key, index) => create(server.url, key, index + 1))
    expect(await eventually(async () => (await inProgress(server)) === keys.length)).toBe(true)
    const exited = terminate(server)
    const outcomes = await Promise.all(pending)
    for (const outcome of outcomes) {
      if (!('answer' in outcome)) throw new Error(`no answer: ${outcome.error}`)
      expect(outcome.answer.status).toBe(503)
      expect(errorOf(outcome.answer)).toEqual({
        code: 'unavailable',
        message: 'The server is shutting down. Please retry.',
      })
    }
    expect(await exited).toEqual({ code: 0, signal: null })

    const restarted = await start({ DATABASE_URL: db.url })
    const retries = await expectEveryKeySettled(restarted.url, keys, outcomes)
    for (const retry of retries) expect(retry.headers.get('idempotent-replayed')).toBeNull()
    await expectOneRunPerKey(restarted.url, retries)
  })

  it('leaves no key claimed and loses no answer under load: a few hundred keys, SIGTERM midway', async () => {
    const db = await database()
    const server = await start({
      DATABASE_URL: db.url,
      TICKSUPPLY_TEST_HANDLER_DELAY_MS: '100',
      SHUTDOWN_GRACE_MS: '10000',
    })
    const keys = Array.from({ length: 300 }, () => newKey())
    const outcomes: Outcome[] = new Array<Outcome>(keys.length)
    let next = 0
    let answered = 0
    let signalled: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined
    const client = async () => {
      while (next < keys.length) {
        const index = next++
        outcomes[index] = await create(server.url, keys[index] ?? '', index + 1)
        if (++answered === 100) signalled = terminate(server)
      }
    }
    await Promise.all(Array.from({ length: 40 }, client))
    expect(signalled).toBeDefined()
    expect(await signalled).toEqual({ code: 0, signal: null })

    const statuses = new Map<string, number>()
    for (const outcome of outcomes) {
      const status = 'answer' in outcome ? String(outcome.answer.status) : 'no answer'
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      // Served, or refused in the envelope: nothing in between.
      if ('answer' in outcome && outcome.answer.status !== 201) {
        expect(outcome.answer.status).toBe(503)
        expect(errorOf(outcome.answer).code).toBe('unavailable')
      }
    }
    expect(statuses.get('201') ?? 0).toBeGreaterThanOrEqual(100)

    const restarted = await start({ DATABASE_URL: db.url })
    const retries = await expectEveryKeySettled(restarted.url, keys, outcomes)
    await expectOneRunPerKey(restarted.url, retries)
  })

  it('hands the running export back to the queue, so the next server runs it at once', async () => {
    const db = await database()
    const artifacts = join(db.dir, 'artifacts')
    const server = await start({
      ...EXPORT_ENV,
      DATABASE_URL: db.url,
      ARTIFACTS_DIR: artifacts,
      TICKSUPPLY_TEST_EXPORT_DELAY_MS: '60000',
      // Only a job given back can run again before this lapses.
      EXPORT_LEASE_MS: '600000',
    })
    const id = await startRunningExport(server.url, 1_100)
    expect(await terminate(server)).toEqual({ code: 0, signal: null })
    const [row] = await queryDatabase<{ status: string; worker_token: string | null }>(
      db.url,
      'SELECT status, worker_token FROM exports WHERE id = ?',
      [id],
    )
    expect(row).toEqual({ status: 'queued', worker_token: null })

    const restarted = await start({
      ...EXPORT_ENV,
      DATABASE_URL: db.url,
      ARTIFACTS_DIR: artifacts,
      EXPORT_LEASE_MS: '600000',
    })
    expect((await waitForExport(restarted.url, id)).status).toBe('succeeded')
  })
})
