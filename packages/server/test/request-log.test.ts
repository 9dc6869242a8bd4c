/**
 * The request log of a real server process at `LOG_LEVEL=info`: one structured line per
 * request, with its request id, account, declared route, status and duration, and for keyed
 * requests the key's hash and what the idempotency layer did; never a raw key, an API key or a
 * link's signature.
 */
import { createHash } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Answer, SpawnedServer } from './support/server.js'
import {
  ACME_KEY,
  ACME_SECOND_KEY,
  GLOBEX_KEY,
  eventually,
  freshDatabase,
  newKey,
  sampleValue,
  send,
  spawnServer,
} from './support/server.js'

interface LogLine {
  level: number
  msg: string
  reqId?: string
  method?: string
  route?: string
  url?: string
  status?: number
  durationMs?: number
  accountId?: string
  aborted?: boolean
  idempotency?: {
    keyHash: string
    outcome: string
    conflict?: string
    waitedMs?: number
  }
}

function requestLines(server: SpawnedServer): LogLine[] {
  return server
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine)
    .filter((line) => line.msg === 'request completed')
}

function lineOf(server: SpawnedServer, answer: Answer): LogLine {
  const id = answer.headers.get('x-request-id')
  const lines = requestLines(server).filter((line) => line.reqId === id)
  expect(lines, `log lines of ${String(id)}`).toHaveLength(1)
  return lines[0]!
}

/** Waits until the line of the answer's request is written (the log is asynchronous). */
async function loggedLine(server: SpawnedServer, answer: Answer): Promise<LogLine> {
  const id = answer.headers.get('x-request-id')
  expect(await eventually(() => requestLines(server).some((line) => line.reqId === id))).toBe(true)
  return lineOf(server, answer)
}

const expectedHash = (accountId: string, key: string) =>
  createHash('sha256').update(`${accountId}\n${key}`).digest('hex').slice(0, 16)

function keyForms(key: string): string[] {
  const simple = key.replace(/-/g, '')
  return [key, key.toUpperCase(), simple, simple.toUpperCase()]
}

/** A keyed create over node:http whose client can leave whenever the test says. */
function startCreate(url: string, key: string, datastreamId: number): { abandon(): Promise<void> } {
  const body = JSON.stringify({ datastream_id: datastreamId })
  const target = new URL('/v1/subscriptions', url)
  const request = httpRequest({
    host: target.hostname,
    port: target.port,
    path: target.pathname,
    method: 'POST',
    agent: false,
    headers: {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'idempotency-key': key,
      'x-api-key': ACME_KEY,
    },
  })
  const closed = new Promise<void>((done) => request.once('close', done))
  request.on('error', () => undefined)
  request.end(body)
  return {
    abandon() {
      request.destroy()
      return closed
    },
  }
}

async function claimCount(server: SpawnedServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  return sampleValue(text, 'ticksupply_idempotency_claims_total')
}

/**
 * Waits until the server has claimed `count` keys in all: the original is running. Callers
 * count from the claims made before it, since earlier tests claimed on the same server.
 */
async function claimed(server: SpawnedServer, count: number): Promise<void> {
  expect(await eventually(async () => (await claimCount(server)) >= count)).toBe(true)
}

function create(url: string, key: string | undefined, datastreamId: number, apiKey = ACME_KEY) {
  return send(`${url}/v1/subscriptions`, {
    ...(key === undefined ? {} : { key }),
    apiKey,
    body: { datastream_id: datastreamId },
  })
}

describe('the request log', () => {
  let waiting: SpawnedServer
  let impatient: SpawnedServer
  const cleanups: (() => void)[] = []
  const keysUsed: string[] = []

  beforeAll(async () => {
    const first = await freshDatabase()
    const second = await freshDatabase()
    cleanups.push(first.cleanup, second.cleanup)
    const env = { LOG_LEVEL: 'info', TICKSUPPLY_TEST_HANDLER_DELAY_MS: '400' }
    waiting = await spawnServer({ ...env, DATABASE_URL: first.url, IDEMPOTENCY_WAIT_MS: '10000' })
    impatient = await spawnServer({ ...env, DATABASE_URL: second.url, IDEMPOTENCY_WAIT_MS: '0' })
  })
  afterAll(async () => {
    for (const server of [waiting, impatient]) {
      server.kill('SIGKILL')
      await server.exited
    }
    for (const cleanup of cleanups) cleanup()
  })

  it('writes one line per request with its id, method, declared route, status and duration', async () => {
    const answer = await send(`${waiting.url}/v1/exchanges/binance/instruments?limit=2`)
    expect(answer.status).toBe(200)
    const line = await loggedLine(waiting, answer)
    expect(line).toMatchObject({
      level: 30,
      method: 'GET',
      route: '/v1/exchanges/:exchange/instruments',
      url: '/v1/exchanges/binance/instruments?limit=2',
      status: 200,
    })
    expect(typeof line.durationMs).toBe('number')
    expect(line.accountId).toMatch(/^acct_/)
    expect(line.idempotency).toBeUndefined()
    // Fastify's own "incoming request" and "request completed" pair is off.
    expect(waiting.stdout()).not.toContain('"msg":"incoming request"')
  })

  it('logs a first keyed request as claimed and its repeat as replayed, under one key hash', async () => {
    const key = newKey()
    keysUsed.push(key)
    const first = await create(waiting.url, key, 1)
    const repeat = await create(waiting.url, key.toUpperCase(), 1, ACME_SECOND_KEY)
    expect(repeat.headers.get('idempotent-replayed')).toBe('true')
    const [claimed, replayed] = [
      await loggedLine(waiting, first),
      await loggedLine(waiting, repeat),
    ]
    expect(claimed.idempotency).toEqual({
      keyHash: expectedHash(claimed.accountId!, key),
      outcome: 'claimed',
    })
    expect(replayed.idempotency).toEqual({
      keyHash: claimed.idempotency?.keyHash,
      outcome: 'replayed',
    })
    expect(replayed.accountId).toBe(claimed.accountId)
  })

  it('gives the same key of another account another hash', async () => {
    const key = newKey()
    keysUsed.push(key)
    const acme = await loggedLine(waiting, await create(waiting.url, key, 2))
    const globex = await loggedLine(waiting, await create(waiting.url, key, 2, GLOBEX_KEY))
    expect(globex.idempotency?.outcome).toBe('claimed')
    expect(globex.accountId).not.toBe(acme.accountId)
    expect(globex.idempotency?.keyHash).not.toBe(acme.idempotency?.keyHash)
  })

  it('attributes each outcome to its own request when many run at once', async () => {
    const keys = Array.from({ length: 8 }, () => newKey())
    keysUsed.push(...keys)
    const answers = await Promise.all(
      keys.flatMap((key, index) => [0, 1, 2].map(() => create(waiting.url, key, 100 + index))),
    )
    let fresh = 0
    for (const answer of answers) {
      expect(answer.status).toBe(201)
      const replayed = answer.headers.get('idempotent-replayed') === 'true'
      if (!replayed) fresh++
      const line = await loggedLine(waiting, answer)
      expect(line.idempotency?.outcome).toBe(replayed ? 'replayed' : 'claimed')
      if (!replayed) expect(line.idempotency?.waitedMs).toBeUndefined()
    }
    expect(fresh).toBe(keys.length)
  })

  it('logs a reused key with another body as a mismatch conflict', async () => {
    const key = newKey()
    keysUsed.push(key)
    await create(waiting.url, key, 3)
    const conflict = await create(waiting.url, key, 4)
    expect(conflict.status).toBe(409)
    expect((await loggedLine(waiting, conflict)).idempotency).toMatchObject({
      outcome: 'conflict',
      conflict: 'mismatch',
    })
  })

  it('logs a duplicate that waited for its original as replayed, with the time it waited', async () => {
    const key = newKey()
    keysUsed.push(key)
    const before = await claimCount(waiting)
    const original = create(waiting.url, key, 5)
    await claimed(waiting, before + 1)
    const duplicate = await create(waiting.url, key, 5)
    expect(duplicate.headers.get('idempotent-replayed')).toBe('true')
    await original
    const line = await loggedLine(waiting, duplicate)
    expect(line.idempotency?.outcome).toBe('replayed')
    expect(typeof line.idempotency?.waitedMs).toBe('number')
  })

  it('logs a duplicate answered "still in progress" as an in-progress conflict', async () => {
    const key = newKey()
    keysUsed.push(key)
    const before = await claimCount(impatient)
    const original = create(impatient.url, key, 6)
    await claimed(impatient, before + 1)
    const duplicate = await create(impatient.url, key, 6)
    expect(duplicate.status).toBe(409)
    await original
    expect((await loggedLine(impatient, duplicate)).idempotency).toMatchObject({
      outcome: 'conflict',
      conflict: 'in_progress',
    })
  })

  it('logs a keyed request answered before its claim as not claimed, and a 401 without an account', async () => {
    const key = newKey()
    keysUsed.push(key)
    const invalid = await send(`${waiting.url}/v1/subscriptions`, {
      key,
      body: { datastream_id: 'x' },
    })
    expect(invalid.status).toBe(400)
    expect((await loggedLine(waiting, invalid)).idempotency?.outcome).toBe('not_claimed')
    const stranger = await send(`${waiting.url}/v1/subscriptions`, {
      key,
      apiKey: 'not-a-key-0123456789',
      body: { datastream_id: 7 },
    })
    expect(stranger.status).toBe(401)
    const line = await loggedLine(waiting, stranger)
    expect(line.accountId).toBeUndefined()
    expect(line.idempotency).toBeUndefined()
  })

  it('still writes the line of a request whose client left before the answer, marked aborted', async () => {
    const key = newKey()
    keysUsed.push(key)
    const before = await claimCount(waiting)
    const request = startCreate(waiting.url, key, 8)
    // Leaves once the operation runs (it sleeps 400 ms), before its answer.
    await claimed(waiting, before + 1)
    await request.abandon()
    expect(
      await eventually(() =>
        requestLines(waiting).some(
          (line) => line.aborted === true && line.idempotency?.outcome === 'claimed',
        ),
      ),
    ).toBe(true)
  })

  it('never writes a raw key, an API key or a signature', async () => {
    const download = await send(
      `${waiting.url}/downloads/art_${'0'.repeat(32)}?expires=1&sig=c2VjcmV0LXNpZ25hdHVyZQ`,
      { apiKey: null },
    )
    const line = await loggedLine(waiting, download)
    expect(line.url).toBe(`/downloads/art_${'0'.repeat(32)}?expires=1&sig=[REDACTED]`)
    for (const server of [waiting, impatient]) {
      const everything = server.stdout() + server.stderr()
      for (const secret of [ACME_KEY, ACME_SECOND_KEY, GLOBEX_KEY, 'c2VjcmV0LXNpZ25hdHVyZQ'])
        expect(everything).not.toContain(secret)
      for (const key of keysUsed)
        for (const form of keyForms(key)) expect(everything).not.toContain(form)
    }
  })
})
