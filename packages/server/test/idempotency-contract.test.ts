/**
 * Every row of shared/spec/idempotency.md, over real HTTP against the real server.
 *
 * "Nothing runs" and "ran once" are asserted as counts: the engine's claims counter (how many
 * times a keyed operation ran) and the subscriptions the list endpoint shows.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Answer, Subscription, TestServer } from './support/server.js'
import {
  ACME_KEY,
  ACME_SECOND_KEY,
  GLOBEX_KEY,
  REQUEST_ID,
  breakIdempotencyStore,
  datastreamIds,
  errorOf,
  eventually,
  newKey,
  rawHead,
  send,
  sendAndAbandon,
  sendRaw,
  spansOf,
  startServer,
  subscribe,
  subscriptionsTo,
} from './support/server.js'

const INVALID_KEY_BODY =
  '{"error":{"code":"invalid_argument","message":"Invalid idempotency key format"}}'
const MISMATCH = {
  code: 'already_exists',
  message: 'Idempotency key reused with different request parameters',
}
const IN_PROGRESS = {
  code: 'already_exists',
  message: 'Request is still in progress. Please retry later.',
}

vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 })

const nextDatastream = datastreamIds(1)

function create(url: string, key: string | undefined, datastreamId: number, apiKey = ACME_KEY) {
  return send(`${url}/v1/subscriptions`, {
    ...(key === undefined ? {} : { key }),
    apiKey,
    body: { datastream_id: datastreamId },
  })
}

function expectReplayOf(replay: Answer, original: Answer): void {
  expect(replay.status).toBe(original.status)
  expect(replay.body.equals(original.body)).toBe(true)
  expect(replay.headers.get('content-type')).toBe(original.headers.get('content-type'))
  expect(replay.headers.get('idempotent-replayed')).toBe('true')
  expect(replay.headers.get('original-request')).toBe(original.headers.get('x-request-id'))
}

function expectOriginal(answer: Answer): void {
  expect(answer.headers.get('idempotent-replayed')).toBeNull()
  expect(answer.headers.get('original-request')).toBeNull()
}

describe('the idempotency contract', () => {
  let server: TestServer
  let url: string

  beforeAll(async () => {
    server = await startServer()
    url = server.url
  })
  afterAll(async () => {
    await server.close()
  })

  describe('the key', () => {
    it('treats the hyphenated, simple, braced and URN forms of one UUID, in any letter case, as one key', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const simple = key.replaceAll('-', '')
      const forms = [
        key.toUpperCase(),
        simple,
        simple.toUpperCase(),
        `{${key}}`,
        `{${key.toUpperCase()}}`,
        `urn:uuid:${key}`,
        `URN:UUID:${key.toUpperCase()}`,
        `Urn:Uuid:${simple.slice(0, 8)}-${key.slice(9)}`,
      ]
      const claimsBefore = server.claims()
      const original = await create(url, key, datastream)
      expect(original.status).toBe(201)
      expectOriginal(original)
      for (const form of forms) {
        expectReplayOf(await create(url, form, datastream), original)
      }
      expect(server.claims() - claimsBefore).toBe(1)
      expect(await subscriptionsTo(url, datastream)).toHaveLength(1)
    })

    it('does not count optional whitespace around the value as part of the key', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const body = JSON.stringify({ datastream_id: datastream })
      const original = await create(url, key, datastream)
      const head = rawHead(
        url,
        'POST',
        '/v1/subscriptions',
        [`Idempotency-Key: \t ${key} \t `],
        body.length,
      )
      const replay = await sendRaw(url, head, body)
      expect(replay.status).toBe(201)
      expect(replay.headers['idempotent-replayed']).toBe('true')
      expect(replay.text).toBe(original.text)
      expect(await subscriptionsTo(url, datastream)).toHaveLength(1)
    })

    it('accepts the header name in any letter case', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const body = JSON.stringify({ datastream_id: datastream })
      const original = await create(url, key, datastream)
      const head = rawHead(
        url,
        'POST',
        '/v1/subscriptions',
        [`IDEMPOTENCY-KEY: ${key}`],
        body.length,
      )
      const replay = await sendRaw(url, head, body)
      expect(replay.status).toBe(201)
      expect(replay.headers['idempotent-replayed']).toBe('true')
      expect(replay.text).toBe(original.text)
    })

    const uuid = '0f8fad5b-d9cb-469f-a165-70867728950e'
    const rejected: [string, string[]][] = [
      [
        'two header lines with different keys',
        [`Idempotency-Key: ${uuid}`, `Idempotency-Key: ${newKey()}`],
      ],
      [
        'two header lines with the same key',
        [`Idempotency-Key: ${uuid}`, `idempotency-key: ${uuid}`],
      ],
      ['an empty value', ['Idempotency-Key:']],
      ['a value of whitespace only', ['Idempotency-Key:  \t  ']],
      ['a quoted value', [`Idempotency-Key: "${uuid}"`]],
      ['a value longer than 128 characters', [`Idempotency-Key: ${'a'.repeat(129)}`]],
      ['a UUID padded past 128 characters', [`Idempotency-Key: ${uuid}${' x'.repeat(50)}`]],
      ['a non-UUID value', ['Idempotency-Key: order-42']],
      ['a UUID with a non-hex digit', ['Idempotency-Key: 0f8fad5b-d9cb-469f-a165-70867728950g']],
      ['a UUID one digit short', ['Idempotency-Key: 0f8fad5b-d9cb-469f-a165-70867728950']],
      ['a UUID with misplaced hyphens', ['Idempotency-Key: 0f8fad5bd-9cb-469f-a165-70867728950e']],
      ['a braced UUID missing its closing brace', [`Idempotency-Key: {${uuid}`]],
      ['a URN without its urn: prefix', [`Idempotency-Key: uuid:${uuid}`]],
      ['two keys joined by a comma', [`Idempotency-Key: ${uuid}, ${uuid}`]],
    ]

    it.each(rejected)(
      'rejects %s with 400 invalid_argument, and nothing runs',
      async (_name, headerLines) => {
        const datastream = nextDatastream()
        const body = JSON.stringify({ datastream_id: datastream })
        const claimsBefore = server.claims()
        const answer = await sendRaw(
          url,
          rawHead(url, 'POST', '/v1/subscriptions', headerLines, body.length),
          body,
        )
        expect(answer.status).toBe(400)
        expect(answer.text).toBe(INVALID_KEY_BODY)
        expect(answer.headers['content-type']).toMatch(/^application\/json/)
        expect(answer.headers['x-request-id']).toMatch(REQUEST_ID)
        expect(server.claims()).toBe(claimsBefore)
        expect(await subscriptionsTo(url, datastream)).toHaveLength(0)
      },
    )

    it('rejects a bad key on DELETE too, and the subscription is left alone', async () => {
      const subscription = await subscribe(url, nextDatastream())
      const answer = await send(`${url}/v1/subscriptions/${subscription.id}`, {
        method: 'DELETE',
        key: 'not-a-uuid',
      })
      expect(answer.status).toBe(400)
      expect(answer.text).toBe(INVALID_KEY_BODY)
      const after = await send(`${url}/v1/subscriptions/${subscription.id}`)
      expect(after.json<Subscription>().status).toBe('active')
    })
  })

  describe('order of checks', () => {
    it('answers authentication (401) before the key format', async () => {
      const answer = await send(`${url}/v1/subscriptions`, {
        apiKey: null,
        key: 'garbage',
        body: { datastream_id: 1 },
      })
      expect(answer.status).toBe(401)
      expect(errorOf(answer)).toEqual({
        code: 'unauthenticated',
        message: 'Invalid or missing API key',
      })
    })

    it('answers the key format (400) before request validation', async () => {
      const answer = await send(`${url}/v1/subscriptions`, {
        key: 'garbage',
        rawBody: '{"datastream_id":',
      })
      expect(answer.status).toBe(400)
      expect(answer.text).toBe(INVALID_KEY_BODY)
    })

    it('lets malformed JSON and schema violations leave the key unused: the fixed request runs', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const claimsBefore = server.claims()
      const malformed = await send(`${url}/v1/subscriptions`, { key, rawBody: '{"datastream_id":' })
      expect(malformed.status).toBe(400)
      expect(errorOf(malformed).code).toBe('invalid_argument')
      for (const wrong of [
        { datastream_id: String(datastream) },
        { datastream_id: datastream, x: 1 },
        {},
      ]) {
        const answer = await send(`${url}/v1/subscriptions`, { key, body: wrong })
        expect(answer.status).toBe(400)
        expect(errorOf(answer).code).toBe('invalid_argument')
      }
      expect(server.claims()).toBe(claimsBefore)
      const fixed = await create(url, key, datastream)
      expect(fixed.status).toBe(201)
      expectOriginal(fixed)
      expect(server.claims() - claimsBefore).toBe(1)
      expect(await subscriptionsTo(url, datastream)).toHaveLength(1)
    })

    it('lets a 401 leave the key unused: the same key with a valid API key runs', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      for (const apiKey of [null, 'not-a-real-api-key-000000']) {
        const answer = await create(url, key, datastream, apiKey as string)
        expect(answer.status).toBe(401)
        expect(errorOf(answer)).toEqual({
          code: 'unauthenticated',
          message: 'Invalid or missing API key',
        })
      }
      const answer = await create(url, key, datastream)
      expect(answer.status).toBe(201)
      expectOriginal(answer)
    })
  })

  describe('replay', () => {
    it('replays the stored answer byte for byte with Idempotent-Replayed and Original-Request, under a new X-Request-Id', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const claimsBefore = server.claims()
      const original = await create(url, key, datastream)
      expect(original.status).toBe(201)
      expectOriginal(original)
      const first = await create(url, key, datastream)
      const second = await create(url, key, datastream)
      for (const replay of [first, second]) {
        expectReplayOf(replay, original)
        expect(replay.headers.get('x-request-id')).toMatch(REQUEST_ID)
        expect(replay.headers.get('x-request-id')).not.toBe(original.headers.get('x-request-id'))
      }
      expect(first.headers.get('x-request-id')).not.toBe(second.headers.get('x-request-id'))
      expect(server.claims() - claimsBefore).toBe(1)
      const subscriptions = await subscriptionsTo(url, datastream)
      expect(subscriptions).toHaveLength(1)
      expect(await spansOf(url, subscriptions[0]!.id)).toHaveLength(1)
    })

    it('replays a 204 of pause, resume and delete as a bodyless 204, and the operation ran once', async () => {
      const subscription = await subscribe(url, nextDatastream())
      for (const action of ['pause', 'resume'] as const) {
        const key = newKey()
        const path = `${url}/v1/subscriptions/${subscription.id}/${action}`
        const original = await send(path, { method: 'POST', key })
        expect(original.status).toBe(204)
        const replay = await send(path, { method: 'POST', key })
        expect(replay.status).toBe(204)
        expect(replay.body).toHaveLength(0)
        expect(replay.headers.get('idempotent-replayed')).toBe('true')
        expect(replay.headers.get('original-request')).toBe(original.headers.get('x-request-id'))
      }
      // One pause and one resume: two spans, not three.
      expect(await spansOf(url, subscription.id)).toHaveLength(2)
      const key = newKey()
      const path = `${url}/v1/subscriptions/${subscription.id}`
      expect((await send(path, { method: 'DELETE', key })).status).toBe(204)
      const replay = await send(path, { method: 'DELETE', key })
      expect(replay.status).toBe(204)
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
    })

    it('does not count headers in the fingerprint: a retry with other headers replays', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const original = await create(url, key, datastream)
      const replay = await send(`${url}/v1/subscriptions`, {
        key,
        body: { datastream_id: datastream },
        headers: { 'content-type': 'application/json; charset=utf-8', 'x-client': 'retry' },
      })
      expectReplayOf(replay, original)
    })

    it('stores an operation 404 for an unknown datastream and replays it as that 404', async () => {
      const key = newKey()
      const claimsBefore = server.claims()
      const original = await create(url, key, 9_999_999)
      expect(original.status).toBe(404)
      expect(errorOf(original).code).toBe('not_found')
      const replay = await create(url, key, 9_999_999)
      expectReplayOf(replay, original)
      expect(server.claims() - claimsBefore).toBe(1)
    })

    it('stores the 404 for a malformed or unknown subscription id in the path and replays it', async () => {
      for (const [method, path] of [
        ['POST', '/v1/subscriptions/not-an-id/pause'],
        ['POST', '/v1/subscriptions/sub_0123456789abcdef0123456789abcdef/resume'],
        ['DELETE', '/v1/subscriptions/sub_XYZ'],
      ] as const) {
        const key = newKey()
        const claimsBefore = server.claims()
        const original = await send(`${url}${path}`, { method, key })
        expect(original.status).toBe(404)
        expect(errorOf(original).code).toBe('not_found')
        const replay = await send(`${url}${path}`, { method, key })
        expectReplayOf(replay, original)
        expect(server.claims() - claimsBefore).toBe(1)
      }
    })

    it('stores a business 409 of a keyed create and replays it, details included', async () => {
      const existing = await subscribe(url, nextDatastream())
      const key = newKey()
      const original = await create(url, key, existing.datastream_id)
      expect(original.status).toBe(409)
      expect(errorOf(original)).toMatchObject({
        code: 'already_exists',
        details: { subscription_id: existing.id },
      })
      expectReplayOf(await create(url, key, existing.datastream_id), original)
    })
  })

  describe('a repeated key with another request', () => {
    it('answers 409 for another body, and the genuine retry still replays the original', async () => {
      const datastream = nextDatastream()
      const other = nextDatastream()
      const key = newKey()
      const claimsBefore = server.claims()
      const original = await create(url, key, datastream)
      for (let attempt = 0; attempt < 2; attempt++) {
        const mismatch = await create(url, key, other)
        expect(mismatch.status).toBe(409)
        expect(mismatch.text).toBe(JSON.stringify({ error: MISMATCH }))
        expect(mismatch.headers.get('idempotent-replayed')).toBeNull()
      }
      expectReplayOf(await create(url, key, datastream), original)
      expect(server.claims() - claimsBefore).toBe(1)
      expect(await subscriptionsTo(url, other)).toHaveLength(0)
    })

    it('answers 409 for the same body sent with other JSON bytes (the fingerprint is the raw body)', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const original = await create(url, key, datastream)
      const spaced = await send(`${url}/v1/subscriptions`, {
        key,
        rawBody: `{ "datastream_id": ${String(datastream)} }`,
      })
      expect(spaced.status).toBe(409)
      expect(errorOf(spaced)).toEqual(MISMATCH)
      expectReplayOf(await create(url, key, datastream), original)
    })

    it('answers 409 for another path or query string, and the original survives', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const original = await create(url, key, datastream)
      const id = original.json<Subscription>().id
      const withQuery = await send(`${url}/v1/subscriptions?source=retry`, {
        key,
        body: { datastream_id: datastream },
      })
      expect(withQuery.status).toBe(409)
      expect(errorOf(withQuery)).toEqual(MISMATCH)
      const otherPath = await send(`${url}/v1/subscriptions/${id}/pause`, { method: 'POST', key })
      expect(otherPath.status).toBe(409)
      expect(errorOf(otherPath)).toEqual(MISMATCH)
      expect((await send(`${url}/v1/subscriptions/${id}`)).json<Subscription>().status).toBe(
        'active',
      )
      expectReplayOf(await create(url, key, datastream), original)
    })

    it('answers 409 for another method (DELETE after POST), and the delete does not run', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const original = await create(url, key, datastream)
      const id = original.json<Subscription>().id
      const pauseKey = newKey()
      const paused = await send(`${url}/v1/subscriptions/${id}/pause`, {
        method: 'POST',
        key: pauseKey,
      })
      expect(paused.status).toBe(204)
      for (const [method, path] of [
        ['DELETE', `/v1/subscriptions/${id}`],
        ['DELETE', `/v1/subscriptions/${id}/pause`],
      ] as const) {
        const answer = await send(`${url}${path}`, { method, key: pauseKey })
        // No DELETE route for /pause: that one is a 404 before any key is looked at.
        if (path.endsWith('/pause')) {
          expect(answer.status).toBe(404)
          continue
        }
        expect(answer.status).toBe(409)
        expect(errorOf(answer)).toEqual(MISMATCH)
      }
      const deleteWithCreateKey = await send(`${url}/v1/subscriptions/${id}`, {
        method: 'DELETE',
        key,
      })
      expect(deleteWithCreateKey.status).toBe(409)
      expect(errorOf(deleteWithCreateKey)).toEqual(MISMATCH)
      expect((await send(`${url}/v1/subscriptions/${id}`)).json<Subscription>().status).toBe(
        'paused',
      )
      expectReplayOf(await create(url, key, datastream), original)
    })
    it('counts a target in absolute form as its path: sent through a proxy, retried directly, one request', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const body = JSON.stringify({ datastream_id: datastream })
      const claimsBefore = server.claims()
      const { host } = new URL(url)
      const viaProxy = await sendRaw(
        url,
        rawHead(
          url,
          'POST',
          `http://${host}/v1/subscriptions`,
          [`Idempotency-Key: ${key}`],
          body.length,
        ),
        body,
      )
      expect(viaProxy.status).toBe(201)
      const direct = await create(url, key, datastream)
      expect(direct.status).toBe(201)
      expect(direct.headers.get('idempotent-replayed')).toBe('true')
      expect(direct.headers.get('original-request')).toBe(viaProxy.headers['x-request-id'])
      expect(direct.text).toBe(viaProxy.text)
      // Another authority for the same server (another name, the scheme in capitals) is a
      // Host, which does not count either.
      const otherName = await sendRaw(
        url,
        rawHead(
          url,
          'POST',
          `HTTP://localhost:${new URL(url).port}/v1/subscriptions`,
          [`Idempotency-Key: ${key}`],
          body.length,
        ),
        body,
      )
      expect(otherName.status).toBe(201)
      expect(otherName.headers['idempotent-replayed']).toBe('true')
      // The path and query still count as sent.
      const otherQuery = await sendRaw(
        url,
        rawHead(
          url,
          'POST',
          `http://${host}/v1/subscriptions?a=1`,
          [`Idempotency-Key: ${key}`],
          body.length,
        ),
        body,
      )
      expect(otherQuery.status).toBe(409)
      expect(JSON.parse(otherQuery.text)).toEqual({ error: MISMATCH })
      expect(server.claims() - claimsBefore).toBe(1)
      expect(await subscriptionsTo(url, datastream)).toHaveLength(1)
    })
  })

  describe('scope', () => {
    it('keeps accounts apart: the same key from another account runs independently', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const claimsBefore = server.claims()
      const acme = await create(url, key, datastream, ACME_KEY)
      const globex = await create(url, key, datastream, GLOBEX_KEY)
      expect(acme.status).toBe(201)
      expect(globex.status).toBe(201)
      expectOriginal(globex)
      expect(globex.json<Subscription>().id).not.toBe(acme.json<Subscription>().id)
      expect(server.claims() - claimsBefore).toBe(2)
      // Another body from globex is judged against globex's record only.
      const globexOther = await create(url, key, nextDatastream(), GLOBEX_KEY)
      expect(globexOther.status).toBe(409)
      expect(errorOf(globexOther)).toEqual(MISMATCH)
      expectReplayOf(await create(url, key, datastream, ACME_KEY), acme)
      expectReplayOf(await create(url, key, datastream, GLOBEX_KEY), globex)
      expect(await subscriptionsTo(url, datastream, ACME_KEY)).toHaveLength(1)
      expect(await subscriptionsTo(url, datastream, GLOBEX_KEY)).toHaveLength(1)
    })

    it('shares keys between two API keys of one account: the second key gets the replay', async () => {
      const datastream = nextDatastream()
      const key = newKey()
      const claimsBefore = server.claims()
      const first = await create(url, key, datastream, ACME_KEY)
      expect(first.status).toBe(201)
      expectReplayOf(await create(url, key, datastream, ACME_SECOND_KEY), first)
      const mismatch = await create(url, key, nextDatastream(), ACME_SECOND_KEY)
      expect(mismatch.status).toBe(409)
      expect(errorOf(mismatch)).toEqual(MISMATCH)
      expect(server.claims() - claimsBefore).toBe(1)
    })
  })

  describe('where the header counts', () => {
    it('ignores even an invalid key on GET and HEAD', async () => {
      const claimsBefore = server.claims()
      const get = await send(`${url}/v1/exchanges`, { key: 'garbage' })
      expect(get.status).toBe(200)
      const head = await send(`${url}/v1/exchanges`, { method: 'HEAD', key: 'garbage' })
      expect(head.status).toBe(200)
      const twoLines = await sendRaw(
        url,
        rawHead(url, 'GET', '/v1/exchanges', ['Idempotency-Key: a', 'Idempotency-Key: b']),
      )
      expect(twoLines.status).toBe(200)
      const key = newKey()
      for (let attempt = 0; attempt < 2; attempt++) {
        const answer = await send(`${url}/v1/subscriptions`, { key })
        expect(answer.status).toBe(200)
        expect(answer.headers.get('idempotent-replayed')).toBeNull()
      }
      expect(server.claims()).toBe(claimsBefore)
    })

    it('ignores the key on PUT, PATCH and OPTIONS: an unknown route is 404, not 400', async () => {
      const subscription = await subscribe(url, nextDatastream())
      for (const method of ['PUT', 'PATCH', 'OPTIONS']) {
        for (const path of ['/v1/subscriptions/x', `/v1/subscriptions/${subscription.id}`]) {
          const answer = await send(`${url}${path}`, {
            method,
            key: 'garbage',
            body: { datastream_id: 1 },
          })
          expect(answer.status, `${method} ${path}`).toBe(404)
          expect(errorOf(answer).code).toBe('not_found')
        }
      }
    })

    it('runs a POST without the header and stores nothing: the second create is the business 409', async () => {
      const datastream = nextDatastream()
      const claimsBefore = server.claims()
      const first = await create(url, undefined, datastream)
      expect(first.status).toBe(201)
      expectOriginal(first)
      const second = await create(url, undefined, datastream)
      expect(second.status).toBe(409)
      expectOriginal(second)
      expect(errorOf(second)).toEqual({
        code: 'already_exists',
        message: `Subscription to datastream ${String(datastream)} already exists`,
        details: { subscription_id: first.json<Subscription>().id },
      })
      expect(server.claims()).toBe(claimsBefore)
    })
  })
})

describe('a 5xx or 408 is not stored', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer({
      REQUEST_DEADLINE_MS: '300',
      TICKSUPPLY_TEST_HANDLER_DELAY_MS: '600',
    })
  })
  afterAll(async () => {
    await server.close()
  })

  it('answers 408 past the deadline, writes nothing, and releases the key so the retry runs again', async () => {
    const datastream = nextDatastream()
    const key = newKey()
    const first = await create(server.url, key, datastream)
    expect(first.status).toBe(408)
    expect(errorOf(first).code).toBe('request_timeout')
    // The operation is still asleep when the 408 leaves; let it wake and find its deadline gone.
    expect(await eventually(() => server.counter('released') >= 1)).toBe(true)
    await sleep(700)
    expect(await subscriptionsTo(server.url, datastream)).toHaveLength(0)

    const retry = await create(server.url, key, datastream)
    expect(retry.status).toBe(408)
    expect(retry.headers.get('idempotent-replayed')).toBeNull()
    expect(server.claims()).toBe(2)
    await sleep(700)
    expect(await subscriptionsTo(server.url, datastream)).toHaveLength(0)
  })
})

// The race the deadline must not lose: operations that end right at it. Each answer is its
// operation's own outcome (201, exactly one subscription) or a 408 that left nothing behind,
// always in the envelope, never a 500, never one answer's status with the other's body.
describe('operations that end right at the deadline', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer({
      REQUEST_DEADLINE_MS: '300',
      TICKSUPPLY_TEST_HANDLER_DELAY_MS: '296',
    })
  })
  afterAll(async () => {
    await server.close()
  })

  it('answers each with its own outcome or a 408 that wrote nothing, keyed or not', async () => {
    const sent: { datastream: number; keyed: boolean; answer: Answer }[] = []
    for (let round = 0; round < 12; round++) {
      const batch = [0, 1, 2].map(() => ({ datastream: nextDatastream(), keyed: round % 2 === 0 }))
      const answers = await Promise.all(
        batch.map(({ datastream, keyed }) =>
          create(server.url, keyed ? newKey() : undefined, datastream),
        ),
      )
      batch.forEach((request, index) => sent.push({ ...request, answer: answers[index] as Answer }))
    }
    await sleep(500)
    const statuses = new Map<number, number>()
    for (const { datastream, keyed, answer } of sent) {
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
      const label = `${keyed ? 'keyed' : 'unkeyed'} ${String(answer.status)} ${answer.text}`
      expect([201, 408], label).toContain(answer.status)
      const created = await subscriptionsTo(server.url, datastream)
      if (answer.status === 201) {
        expect(answer.json<Subscription>().datastream_id, label).toBe(datastream)
        expect(created, label).toHaveLength(1)
      } else {
        expect(errorOf(answer), label).toEqual({
          code: 'request_timeout',
          message: 'Request timed out',
        })
        expect(created, label).toHaveLength(0)
      }
    }
    expect([...statuses.values()].reduce((sum, count) => sum + count, 0)).toBe(36)
  })
})

describe('when the store fails', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(async () => {
    await server.close()
  })

  it('fails closed with 503 unavailable while the store cannot be written, and the key stays usable', async () => {
    const datastream = nextDatastream()
    const key = newKey()
    const restore = await breakIdempotencyStore(server)
    let answer: Answer
    try {
      answer = await create(server.url, key, datastream)
    } finally {
      await restore()
    }
    expect(answer.status).toBe(503)
    expect(errorOf(answer).code).toBe('unavailable')
    // Nothing ran (on SQLite the claim itself lives in memory and was given back; on
    // PostgreSQL it could not even be made).
    expect(await subscriptionsTo(server.url, datastream)).toHaveLength(0)
    const retry = await create(server.url, key, datastream)
    expect(retry.status).toBe(201)
    expectOriginal(retry)
    expect(await subscriptionsTo(server.url, datastream)).toHaveLength(1)
  })
})

describe('expiry', () => {
  let server: TestServer

  beforeAll(async () => {
    // The TTL must exceed the lease and the deadline (config.ts), so both are shorter here;
    // the lease is still long enough that a busy test machine renews it in time (2.5 s was
    // not: the PostgreSQL instance stopped vouching for a moment and a create answered 503).
    server = await startServer({
      IDEMPOTENCY_TTL_SECONDS: '6',
      IDEMPOTENCY_LEASE_MS: '5000',
      REQUEST_DEADLINE_MS: '5000',
    })
  })
  afterAll(async () => {
    await server.close()
  })

  it('makes the key new again after its TTL: another body then runs instead of 409', async () => {
    const first = nextDatastream()
    const second = nextDatastream()
    const key = newKey()
    expect((await create(server.url, key, first)).status).toBe(201)
    const early = await create(server.url, key, second)
    expect(early.status).toBe(409)
    expect(errorOf(early)).toEqual(MISMATCH)
    await sleep(6_300)
    const late = await create(server.url, key, second)
    expect(late.status).toBe(201)
    expectOriginal(late)
    expect(await subscriptionsTo(server.url, second)).toHaveLength(1)
    // The record now belongs to the second request.
    const replay = await create(server.url, key, second)
    expectReplayOf(replay, late)
    expect(server.claims()).toBe(2)
  })
})

describe('waiting for an original that is still running', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer({ TICKSUPPLY_TEST_HANDLER_DELAY_MS: '500' })
  })
  afterAll(async () => {
    await server.close()
  })

  /** Sends the original and resolves (wrapped, so as not to await it) once its key is claimed. */
  async function startOriginal(key: string, datastream: number) {
    const claimsBefore = server.claims()
    const original = create(server.url, key, datastream)
    expect(await eventually(() => server.claims() > claimsBefore)).toBe(true)
    return { original }
  }

  it('gives a duplicate sent while the original runs the replay, and the operation ran once', async () => {
    const datastream = nextDatastream()
    const key = newKey()
    const claimsBefore = server.claims()
    const { original: pending } = await startOriginal(key, datastream)
    const duplicate = await create(server.url, key, datastream)
    const original = await pending
    expect(original.status).toBe(201)
    expectOriginal(original)
    expectReplayOf(duplicate, original)
    expect(server.claims() - claimsBefore).toBe(1)
    expect(await subscriptionsTo(server.url, datastream)).toHaveLength(1)
  })

  it('answers a different body with the mismatch 409 at once, even while the original runs', async () => {
    const datastream = nextDatastream()
    const key = newKey()
    const { original: pending } = await startOriginal(key, datastream)
    const mismatch = await create(server.url, key, nextDatastream())
    expect(mismatch.status).toBe(409)
    expect(errorOf(mismatch)).toEqual(MISMATCH)
    const original = await pending
    expect(original.status).toBe(201)
    expectReplayOf(await create(server.url, key, datastream), original)
  })

  it('lets a waiting client that disconnects go, and the original still completes once', async () => {
    const datastream = nextDatastream()
    const key = newKey()
    const claimsBefore = server.claims()
    const abortedBefore = server.counter('waits', { outcome: 'aborted' })
    const { original: pending } = await startOriginal(key, datastream)
    await sendAndAbandon(server.url, { key, body: { datastream_id: datastream }, afterMs: 100 })
    const original = await pending
    expect(original.status).toBe(201)
    expect(
      await eventually(() => server.counter('waits', { outcome: 'aborted' }) > abortedBefore),
    ).toBe(true)
    expect(server.claims() - claimsBefore).toBe(1)
    expectReplayOf(await create(server.url, key, datastream), original)
    expect(server.claims() - claimsBefore).toBe(1)
    expect(await subscriptionsTo(server.url, datastream)).toHaveLength(1)
  })

  it('completes the operation of a client that disconnects while it runs: the retry gets the replay', async () => {
    const datastream = nextDatastream()
    const key = newKey()
    const claimsBefore = server.claims()
    await sendAndAbandon(server.url, { key, body: { datastream_id: datastream }, afterMs: 100 })
    const retry = await create(server.url, key, datastream)
    expect(retry.status).toBe(201)
    expect(retry.headers.get('idempotent-replayed')).toBe('true')
    expect(retry.json<Subscription>().datastream_id).toBe(datastream)
    expect(server.claims() - claimsBefore).toBe(1)
    const subscriptions = await subscriptionsTo(server.url, datastream)
    expect(subscriptions).toHaveLength(1)
    expect(await spansOf(server.url, subscriptions[0]!.id)).toHaveLength(1)
  })
})

describe('an original that outlasts the wait', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer({
      IDEMPOTENCY_WAIT_MS: '200',
      TICKSUPPLY_TEST_HANDLER_DELAY_MS: '1500',
    })
  })
  afterAll(async () => {
    await server.close()
  })

  it('answers the duplicate 409 in progress with Retry-After: 1, and stores nothing for it', async () => {
    const datastream = nextDatastream()
    const key = newKey()
    const pending = create(server.url, key, datastream)
    expect(await eventually(() => server.claims() === 1)).toBe(true)
    const duplicate = await create(server.url, key, datastream)
    expect(duplicate.status).toBe(409)
    expect(duplicate.text).toBe(JSON.stringify({ error: IN_PROGRESS }))
    expect(duplicate.headers.get('retry-after')).toBe('1')
    expect(duplicate.headers.get('idempotent-replayed')).toBeNull()
    const original = await pending
    expect(original.status).toBe(201)
    expectReplayOf(await create(server.url, key, datastream), original)
    expect(server.claims()).toBe(1)
    expect(await subscriptionsTo(server.url, datastream)).toHaveLength(1)
  })
})
