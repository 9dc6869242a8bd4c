import { afterEach, describe, expect, it } from 'vitest'
import {
  AlreadyExistsError,
  IdempotencyKeyReusedError,
  InvalidArgumentError,
  NetworkError,
  NotFoundError,
  PaymentRequiredError,
  PermissionDeniedError,
  RequestInProgressError,
  TimeoutError,
  UnauthenticatedError,
  UnavailableError,
  UnexpectedResponseError,
  createClient,
  createMemoryKeyStore,
} from '../src/index.js'
import type { ClientOptions, RetryEvent } from '../src/index.js'
import type { TestHandler, TestHttpServer } from './support/test-http-server.js'
import { sendError, sendJson, startTestHttpServer } from './support/test-http-server.js'

const V4_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const KEY_REUSED = 'Idempotency key reused with different request parameters'
const IN_PROGRESS = 'Request is still in progress. Please retry later.'
const SUBSCRIPTION = {
  id: 'sub_0190a0b0c0d0e0f00000000000000001',
  datastream_id: 7,
  status: 'active',
  created_at: '2026-11-29T08:00:00Z',
  datastream: {
    datastream_id: 7,
    exchange: 'binance',
    instrument: 'BTCUSDT',
    stream_type: 'trade',
    wire_format: 'json',
  },
  spans: [],
}

let server: TestHttpServer | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
})

/** A client of a fresh test server, with retries fast enough for tests. */
async function clientOf(handler: TestHandler, options: Partial<ClientOptions> = {}) {
  server = await startTestHttpServer(handler)
  const client = createClient({
    apiKey: 'test-key-0123456789',
    baseUrl: server.url,
    timeoutMs: 2_000,
    retry: { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 5 },
    ...options,
  })
  return { client, requests: server.requests }
}

/** Answers with `failures` in turn, then the success. */
function failThen(
  failures: readonly ((response: Parameters<TestHandler>[1]) => void)[],
): TestHandler {
  return (_request, response, index) => {
    const fail = failures[index]
    if (fail === undefined) sendJson(response, 201, SUBSCRIPTION)
    else fail(response)
  }
}

const unavailable = (response: Parameters<TestHandler>[1]): void => {
  sendError(response, 503, 'unavailable', 'database down')
}

describe('a POST', () => {
  it('is retried after two 503s with the same fresh v4 key each time, and returns the resource', async () => {
    const { client, requests } = await clientOf(failThen([unavailable, unavailable]))

    const subscription = await client.subscriptions.create({ datastream_id: 7 })

    expect(subscription).toEqual(SUBSCRIPTION)
    expect(requests).toHaveLength(3)
    const keys = requests.map((request) => request.headers['idempotency-key'])
    expect(keys[0]).toMatch(V4_UUID)
    expect(new Set(keys).size).toBe(1)
    expect(requests.map((request) => request.body)).toEqual(Array(3).fill('{"datastream_id":7}'))
  })

  it('gets a different key for each logical operation', async () => {
    const { client, requests } = await clientOf(failThen([]))

    await client.subscriptions.create({ datastream_id: 7 })
    await client.subscriptions.create({ datastream_id: 7 })

    expect(requests).toHaveLength(2)
    expect(requests[0]?.headers['idempotency-key']).not.toBe(
      requests[1]?.headers['idempotency-key'],
    )
  })

  it("sends the caller's own key unchanged on every attempt", async () => {
    const { client, requests } = await clientOf(failThen([unavailable, unavailable]))
    const own = '{A1B2C3D4-E5F6-7890-ABCD-EF1234567890}'

    await client.subscriptions.create({ datastream_id: 7 }, { idempotencyKey: own })

    expect(requests.map((request) => request.headers['idempotency-key'])).toEqual([own, own, own])
  })

  it('refuses a key that is not a UUID before sending anything', async () => {
    const { client, requests } = await clientOf(failThen([]))

    await expect(
      client.subscriptions.create({ datastream_id: 7 }, { idempotencyKey: 'not-a-uuid' }),
    ).rejects.toThrow(TypeError)
    expect(requests).toHaveLength(0)
  })

  it('is retried after the "still in progress" 409 and gets the response', async () => {
    const inProgress = (response: Parameters<TestHandler>[1]): void => {
      sendError(response, 409, 'already_exists', IN_PROGRESS, { 'retry-after': '1' })
    }
    const events: RetryEvent[] = []
    const { client, requests } = await clientOf(failThen([inProgress]), {
      onRetry: (event) => events.push(event),
    })

    const subscription = await client.subscriptions.create({ datastream_id: 7 })

    expect(subscription.id).toBe(SUBSCRIPTION.id)
    expect(requests).toHaveLength(2)
    expect(events.map((event) => event.error)).toEqual([expect.any(RequestInProgressError)])
    expect(new Set(requests.map((request) => request.headers['idempotency-key'])).size).toBe(1)
  })

  it('is never retried after the key-reused 409, which is its own error class', async () => {
    const { client, requests } = await clientOf((_request, response) => {
      sendError(response, 409, 'already_exists', KEY_REUSED, {
        'x-request-id': 'req_00000000000000aa',
      })
    })

    const error: unknown = await client.subscriptions
      .create({ datastream_id: 7 })
      .catch((e: unknown) => e)

    expect(error).toBeInstanceOf(IdempotencyKeyReusedError)
    expect(error).toMatchObject({
      status: 409,
      code: 'idempotency_key_reused',
      apiCode: 'already_exists',
      message: KEY_REUSED,
      requestId: 'req_00000000000000aa',
      retryable: false,
    })
    expect(requests).toHaveLength(1)
  })

  it.each([
    [400, 'invalid_argument', 'bad field', InvalidArgumentError],
    [401, 'unauthenticated', 'Invalid or missing API key', UnauthenticatedError],
    [402, 'payment_required', 'plan', PaymentRequiredError],
    [403, 'permission_denied', 'Subscription has been deleted', PermissionDeniedError],
    [404, 'not_found', 'Datastream 7 not found', NotFoundError],
    [409, 'already_exists', 'Subscription to datastream 7 already exists', AlreadyExistsError],
  ] as const)('is not retried after a %i %s', async (status, code, message, ErrorClass) => {
    const { client, requests } = await clientOf((_request, response) => {
      sendError(response, status, code, message)
    })

    await expect(client.subscriptions.create({ datastream_id: 7 })).rejects.toBeInstanceOf(
      ErrorClass,
    )
    expect(requests).toHaveLength(1)
  })

  it.each([
    [408, 'request_timeout'],
    [429, 'rate_limited'],
    [500, 'internal'],
    [503, 'unavailable'],
  ] as const)('is retried after a %i %s with the same key', async (status, code) => {
    const { client, requests } = await clientOf(
      failThen([
        (response) => {
          sendError(response, status, code, 'try again')
        },
      ]),
    )

    await client.subscriptions.create({ datastream_id: 7 })

    expect(requests).toHaveLength(2)
    expect(new Set(requests.map((request) => request.headers['idempotency-key'])).size).toBe(1)
  })

  it('is retried when the connection drops before any response', async () => {
    const events: RetryEvent[] = []
    const { client, requests } = await clientOf(
      (_request, response, index) => {
        if (index === 0) response.socket?.destroy()
        else sendJson(response, 201, SUBSCRIPTION)
      },
      { onRetry: (event) => events.push(event) },
    )

    await client.subscriptions.create({ datastream_id: 7 })

    expect(requests).toHaveLength(2)
    expect(events[0]?.error).toBeInstanceOf(NetworkError)
    expect(requests[0]?.headers['idempotency-key']).toBe(requests[1]?.headers['idempotency-key'])
  })

  it('is retried after a per-attempt timeout, with the same key', async () => {
    const { client, requests } = await clientOf(
      (_request, response, index) => {
        // The first answer never comes; the client must give up on it and try again.
        if (index > 0) sendJson(response, 201, SUBSCRIPTION)
      },
      { timeoutMs: 200 },
    )

    const subscription = await client.subscriptions.create({ datastream_id: 7 })

    expect(subscription.id).toBe(SUBSCRIPTION.id)
    expect(requests).toHaveLength(2)
    expect(requests[0]?.headers['idempotency-key']).toBe(requests[1]?.headers['idempotency-key'])
  })

  it('gives up after maxAttempts with the last error', async () => {
    const { client, requests } = await clientOf(unavailableAlways, {
      retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 1 },
    })

    await expect(client.subscriptions.create({ datastream_id: 7 })).rejects.toBeInstanceOf(
      UnavailableError,
    )
    expect(requests).toHaveLength(4)
  })

  it('stops at the overall deadline', async () => {
    const { client, requests } = await clientOf(
      () => {
        // Never answers.
      },
      {
        timeoutMs: 150,
        deadlineMs: 400,
        retry: { maxAttempts: 100, baseDelayMs: 1, maxDelayMs: 1 },
      },
    )

    await expect(client.subscriptions.create({ datastream_id: 7 })).rejects.toBeInstanceOf(
      TimeoutError,
    )
    expect(requests.length).toBeGreaterThanOrEqual(1)
    expect(requests.length).toBeLessThan(100)
  })

  it('stops when its AbortSignal aborts and sends nothing more', async () => {
    const controller = new AbortController()
    const { client, requests } = await clientOf(() => {
      controller.abort(new Error('caller gave up'))
    })

    await expect(
      client.subscriptions.create({ datastream_id: 7 }, { signal: controller.signal }),
    ).rejects.toThrow('caller gave up')
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(requests).toHaveLength(1)
  })

  it('honours Retry-After, cut to maxRetryAfterMs', async () => {
    const events: RetryEvent[] = []
    const { client } = await clientOf(
      failThen([
        (response) => {
          sendError(response, 429, 'rate_limited', 'slow down', { 'retry-after': '3' })
        },
        (response) => {
          sendError(response, 503, 'unavailable', 'down', {
            'retry-after': new Date(Date.now() + 3_600_000).toUTCString(),
          })
        },
        (response) => {
          sendError(response, 429, 'rate_limited', 'slow down', { 'retry-after': '0' })
        },
      ]),
      {
        retry: { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 40 },
        onRetry: (event) => events.push(event),
      },
    )

    await client.subscriptions.create({ datastream_id: 7 })

    expect(events.map((event) => event.delayMs)).toEqual([40, 40, 0])
  })
})

function unavailableAlways(_request: unknown, response: Parameters<TestHandler>[1]): void {
  sendError(response, 503, 'unavailable', 'down')
}

describe('a DELETE', () => {
  it('is retried with one key for the operation', async () => {
    const { client, requests } = await clientOf((_request, response, index) => {
      if (index < 2) sendError(response, 500, 'internal', 'bug')
      else sendJson(response, 204)
    })

    await client.subscriptions.delete('sub_1')

    expect(requests.map((request) => request.method)).toEqual(['DELETE', 'DELETE', 'DELETE'])
    expect(requests[0]?.headers['idempotency-key']).toMatch(V4_UUID)
    expect(new Set(requests.map((request) => request.headers['idempotency-key'])).size).toBe(1)
  })
})

describe('a GET and a PUT', () => {
  it('are retried on the same conditions, without a key', async () => {
    const { client, requests } = await clientOf((request, response, index) => {
      if (index % 2 === 0) sendError(response, 503, 'unavailable', 'down')
      else if (request.method === 'PUT') sendJson(response, 200, { columns: [] })
      else sendJson(response, 200, [{ code: 'binance', display_name: 'Binance' }])
    })

    await client.exchanges.list()
    await client.exportSchemas.updateDraft('sch_1', { columns: [] })

    expect(requests.map((request) => request.method)).toEqual(['GET', 'GET', 'PUT', 'PUT'])
    expect(requests.filter((request) => 'idempotency-key' in request.headers)).toHaveLength(0)
  })

  it('are not retried after a 404', async () => {
    const { client, requests } = await clientOf((_request, response) => {
      sendError(response, 404, 'not_found', 'no such thing')
    })

    await expect(client.subscriptions.get('sub_1')).rejects.toBeInstanceOf(NotFoundError)
    expect(requests).toHaveLength(1)
  })
})

describe('a response outside the contract', () => {
  it('is retried when its status is 5xx, and ends as UnexpectedResponseError', async () => {
    const { client, requests } = await clientOf(
      (_request, response) => {
        response.writeHead(502, { 'content-type': 'text/html' })
        response.end('<html>Bad Gateway</html>')
      },
      { retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 } },
    )

    const error: unknown = await client.exchanges.list().catch((e: unknown) => e)

    expect(error).toBeInstanceOf(UnexpectedResponseError)
    expect(error).toMatchObject({ status: 502, retryable: true })
    expect(requests).toHaveLength(3)
  })
})

describe('an operation with an operationId', () => {
  it('keeps its key in the key store until the operation got an answer', async () => {
    const keyStore = createMemoryKeyStore()
    const { client, requests } = await clientOf(
      (_request, response, index) => {
        if (index < 2) unavailableAlways(undefined, response)
        else sendJson(response, 201, SUBSCRIPTION)
      },
      { keyStore, retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1 } },
    )

    await expect(
      client.subscriptions.create({ datastream_id: 7 }, { operationId: 'op-1' }),
    ).rejects.toBeInstanceOf(UnavailableError)
    const saved = await keyStore.get('op-1')
    expect(saved).toBe(requests[0]?.headers['idempotency-key'])

    await client.subscriptions.create({ datastream_id: 7 }, { operationId: 'op-1' })

    expect(requests.map((request) => request.headers['idempotency-key'])).toEqual(
      Array(3).fill(saved),
    )
    expect(await keyStore.get('op-1')).toBeUndefined()
  })

  it('forgets its key after a definitive error', async () => {
    const keyStore = createMemoryKeyStore()
    const { client } = await clientOf(
      (_request, response) => {
        sendError(response, 404, 'not_found', 'Datastream 7 not found')
      },
      { keyStore },
    )

    await expect(
      client.subscriptions.create({ datastream_id: 7 }, { operationId: 'op-2' }),
    ).rejects.toBeInstanceOf(NotFoundError)
    expect(await keyStore.get('op-2')).toBeUndefined()
  })

  it('keeps its key after an answer from before the claim, when an earlier attempt may have run', async () => {
    const keyStore = createMemoryKeyStore()
    let runs = 0
    const { client, requests } = await clientOf(
      (_request, response, index) => {
        if (index === 0) {
          // The operation runs, and its answer is lost with the connection.
          runs++
          response.socket?.destroy()
        } else if (index === 1) sendError(response, 401, 'unauthenticated', 'Invalid API key')
        else if (index === 2) {
          response.writeHead(403, { 'content-type': 'text/html' }).end('<h1>Forbidden</h1>')
        } else sendJson(response, 201, SUBSCRIPTION, { 'idempotent-replayed': 'true' })
      },
      { keyStore },
    )

    await expect(
      client.subscriptions.create({ datastream_id: 7 }, { operationId: 'op-lost' }),
    ).rejects.toBeInstanceOf(UnauthenticatedError)
    await expect(
      client.subscriptions.create({ datastream_id: 7 }, { operationId: 'op-lost' }),
    ).rejects.toBeTruthy()
    const replay = await client.subscriptions.create(
      { datastream_id: 7 },
      { operationId: 'op-lost' },
    )
    expect(replay.id).toBe(SUBSCRIPTION.id)
    expect(new Set(requests.map((request) => request.headers['idempotency-key'])).size).toBe(1)
    expect(runs).toBe(1)
    expect(await keyStore.get('op-lost')).toBeUndefined()
  })

  it('shares one key among calls made at once with one id', async () => {
    const keyStore = createMemoryKeyStore()
    const { client, requests } = await clientOf(failThen([]), { keyStore })

    await Promise.all(
      [1, 2, 3].map(() =>
        client.subscriptions.create({ datastream_id: 7 }, { operationId: 'op-together' }),
      ),
    )
    expect(requests).toHaveLength(3)
    expect(new Set(requests.map((request) => request.headers['idempotency-key'])).size).toBe(1)
  })

  it('forgets nothing it was not asked to: a success stands even when the store cannot forget', async () => {
    const memory = createMemoryKeyStore()
    const keyStore = { ...memory, delete: () => Promise.reject(new Error('disk full')) }
    const { client } = await clientOf(failThen([]), { keyStore })

    const created = await client.subscriptions.create({ datastream_id: 7 }, { operationId: 'op-4' })
    expect(created.id).toBe(SUBSCRIPTION.id)
  })

  it('saves no key for a body it cannot send', async () => {
    const keyStore = createMemoryKeyStore()
    const { client, requests } = await clientOf(failThen([]), { keyStore })
    const cyclic: Record<string, unknown> = { datastream_id: 7 }
    cyclic['self'] = cyclic

    await expect(
      client.request(
        { method: 'POST', path: '/v1/subscriptions', body: cyclic },
        { operationId: 'op-5' },
      ),
    ).rejects.toBeInstanceOf(TypeError)
    expect(await keyStore.get('op-5')).toBeUndefined()
    expect(requests).toHaveLength(0)
  })

  it('sends an int64 given as a bigint digit for digit, on every attempt', async () => {
    const { client, requests } = await clientOf(failThen([unavailable]))

    await client.exports.create({
      datastream_id: 9_223_372_036_854_775_807n,
      start_time: 1_767_225_600_000_000_001n,
      end_time: '1767225600000000002',
    })
    expect(requests).toHaveLength(2)
    for (const request of requests) {
      expect(request.body).toBe(
        '{"datastream_id":9223372036854775807,"start_time":1767225600000000001,"end_time":"1767225600000000002"}',
      )
    }
  })

  it('needs a key store', async () => {
    const { client, requests } = await clientOf(failThen([]))

    await expect(
      client.subscriptions.create({ datastream_id: 7 }, { operationId: 'op-3' }),
    ).rejects.toThrow('`operationId` needs a `keyStore`')
    expect(requests).toHaveLength(0)
  })
})

describe('a request through client.request()', () => {
  const dropFirstTwo: TestHandler = (_request, response, index) => {
    if (index < 2) response.socket?.destroy()
    else sendJson(response, 201, SUBSCRIPTION)
  }

  it.each(['post', 'Delete'])(
    'sends the method %s in upper case, with one key on every retry',
    async (method) => {
      const { client, requests } = await clientOf(dropFirstTwo)

      const answer = await client.request({
        method: method as 'POST',
        path: '/v1/subscriptions',
        body: { datastream_id: 7 },
      })

      expect(answer.attempts).toBe(3)
      expect(requests.map((request) => request.method)).toEqual(Array(3).fill(method.toUpperCase()))
      const keys = requests.map((request) => request.headers['idempotency-key'])
      expect(keys[0]).toMatch(V4_UUID)
      expect(new Set(keys).size).toBe(1)
      expect(answer.idempotencyKey).toBe(keys[0])
    },
  )

  it.each(['PATCH', 'patch'])(
    'sends a %s once and never retries it: it has no key to make a repeat safe',
    async (method) => {
      const { client, requests } = await clientOf(dropFirstTwo)

      await expect(
        client.request({ method: method as 'POST', path: '/v1/subscriptions', body: {} }),
      ).rejects.toBeInstanceOf(NetworkError)
      expect(requests).toHaveLength(1)
      expect(requests[0]?.method).toBe('PATCH')
      expect(requests[0]?.headers['idempotency-key']).toBeUndefined()
    },
  )

  it('refuses a method that is not an HTTP token before sending anything', async () => {
    const { client, requests } = await clientOf(dropFirstTwo)

    await expect(
      client.request({ method: 'PO ST' as 'POST', path: '/v1/subscriptions' }),
    ).rejects.toThrow(TypeError)
    expect(requests).toHaveLength(0)
  })
})

describe('the retry decision', () => {
  it.each([
    [400, 'unavailable'],
    [404, 'internal'],
    [422, 'rate_limited'],
    [409, 'request_timeout'],
    [400, 'already_exists', IN_PROGRESS],
  ])(
    'follows the status: a %i is not retried, even with the code %s',
    async (status, code, message = 'try again') => {
      const { client, requests } = await clientOf(
        failThen([
          (response) => {
            sendError(response, status, code, message)
          },
        ]),
      )

      const error: unknown = await client.subscriptions
        .create({ datastream_id: 7 })
        .catch((e: unknown) => e)

      expect(error).toMatchObject({ status, apiCode: code, retryable: false })
      expect(requests).toHaveLength(1)
    },
  )

  it.each([
    [503, 'invalid_argument'],
    [500, 'not_found'],
    [429, 'already_exists'],
    [502, 'already_exists', KEY_REUSED],
  ])(
    'follows the status: a %i is retried with the same key, even with the code %s',
    async (status, code, message = 'no') => {
      const { client, requests } = await clientOf(
        failThen([
          (response) => {
            sendError(response, status, code, message)
          },
        ]),
      )

      const subscription = await client.subscriptions.create({ datastream_id: 7 })

      expect(subscription.id).toBe(SUBSCRIPTION.id)
      expect(requests).toHaveLength(2)
      expect(new Set(requests.map((request) => request.headers['idempotency-key'])).size).toBe(1)
    },
  )

  it('ends a code that disagrees with its status as UnexpectedResponseError, keeping the code', async () => {
    const { client, requests } = await clientOf(
      (_request, response) => {
        sendError(response, 503, 'invalid_argument', 'bad field')
      },
      { retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 } },
    )

    const error: unknown = await client.subscriptions
      .create({ datastream_id: 7 })
      .catch((e: unknown) => e)

    expect(error).toBeInstanceOf(UnexpectedResponseError)
    expect(error).toMatchObject({ status: 503, apiCode: 'invalid_argument', retryable: true })
    expect(requests).toHaveLength(3)
  })
})

describe('per-call headers', () => {
  it.each([
    ['a character above U+00FF', 'caf\u2713'],
    ['a NUL', 'a\u0000b'],
  ])(
    'with %s are refused with a TypeError naming the header, sent nowhere, not retried',
    async (_name, value) => {
      const events: RetryEvent[] = []
      const { client, requests } = await clientOf(
        (_request, response) => {
          sendJson(response, 200, [])
        },
        { onRetry: (event) => events.push(event) },
      )

      const error: unknown = await client.exchanges
        .list({ headers: { 'x-trace': value } })
        .catch((e: unknown) => e)

      expect(error).toBeInstanceOf(TypeError)
      expect((error as Error).message).toContain('`headers.x-trace`')
      expect(events).toHaveLength(0)
      expect(requests).toHaveLength(0)
      // The line is at U+00FF: Latin-1 beyond ASCII is what fetch can still send.
      await client.exchanges.list({ headers: { 'x-trace': 'caf\u00e9' } })
      expect(requests).toHaveLength(1)
    },
  )
})

describe('keys and headers fetch could not send', () => {
  it.each([
    ['a no-break space', '\u00a0'],
    ['a byte order mark', '\ufeff'],
    ['a line separator', '\u2028'],
    ['an ideographic space', '\u3000'],
  ])('refuses a key padded with %s before sending anything', async (_name, pad) => {
    const events: RetryEvent[] = []
    const { client, requests } = await clientOf(failThen([]), {
      onRetry: (event) => events.push(event),
    })

    await expect(
      client.subscriptions.create(
        { datastream_id: 7 },
        { idempotencyKey: `${pad}0190a0b0-c0d0-4e0f-8000-000000000001` },
      ),
    ).rejects.toBeInstanceOf(TypeError)
    expect(events).toHaveLength(0)
    expect(requests).toHaveLength(0)
    // Spaces and tabs are the header's own whitespace: the server takes them.
    await client.subscriptions.create(
      { datastream_id: 7 },
      { idempotencyKey: ' \t0190a0b0-c0d0-4e0f-8000-000000000001\t ' },
    )
    expect(requests).toHaveLength(1)
  })

  it('refuses a saved key that is not a UUID rather than send it or mint another', async () => {
    const keyStore = createMemoryKeyStore()
    await keyStore.set('op-bad', 'hello')
    const { client, requests } = await clientOf(failThen([]), { keyStore })

    await expect(
      client.subscriptions.create({ datastream_id: 7 }, { operationId: 'op-bad' }),
    ).rejects.toThrow('not a UUID')
    expect(requests).toHaveLength(0)
    expect(await keyStore.get('op-bad')).toBe('hello')
  })

  it.each(['Transfer-Encoding', 'Expect', 'Upgrade', 'Keep-Alive', 'Connection', 'User-Agent'])(
    'refuses a %s header of the caller with a TypeError, not as a lost connection',
    async (name) => {
      const events: RetryEvent[] = []
      const { client, requests } = await clientOf(failThen([]), {
        onRetry: (event) => events.push(event),
      })

      const error: unknown = await client.exchanges
        .list({ headers: { [name]: 'x' } })
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(TypeError)
      expect(events).toHaveLength(0)
      expect(requests).toHaveLength(0)
    },
  )
})

describe('the key store after a success whose body is not JSON', () => {
  it('forgets the key: the operation ran, and a retry would replay the same body', async () => {
    const keyStore = createMemoryKeyStore()
    const { client, requests } = await clientOf(
      (_request, response) => {
        response.writeHead(201, { 'content-type': 'text/plain' })
        response.end('Created')
      },
      { keyStore },
    )

    const error: unknown = await client.subscriptions
      .create({ datastream_id: 7 }, { operationId: 'op-text' })
      .catch((e: unknown) => e)

    expect(error).toBeInstanceOf(UnexpectedResponseError)
    expect(error).toMatchObject({ status: 201, retryable: false })
    expect(requests).toHaveLength(1)
    expect(await keyStore.get('op-text')).toBeUndefined()
  })
})
