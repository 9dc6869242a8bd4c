/**
 * Bad input of every kind: never a 500, always the error envelope with an X-Request-Id, and
 * never Fastify's default error shape.
 */
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Answer, RawAnswer, TestServer } from './support/server.js'
import {
  ACME_KEY,
  REQUEST_ID,
  datastreamIds,
  rawHead,
  send,
  sendRaw,
  spansOf,
  startServer,
  subscribe,
} from './support/server.js'

vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 })

/** The answer is `status` with exactly the envelope, as JSON, with a request id. */
function expectEnvelope(answer: Answer | RawAnswer, status: number, code: string): void {
  const text = answer.text
  const header = (name: string) =>
    'json' in answer ? answer.headers.get(name) : (answer.headers[name] ?? null)
  expect(answer.status, text).toBe(status)
  expect(header('content-type')).toMatch(/^application\/json/)
  expect(header('x-request-id')).toMatch(REQUEST_ID)
  const body = JSON.parse(text) as {
    error?: { code?: unknown; message?: unknown; details?: unknown }
  }
  expect(Object.keys(body)).toEqual(['error'])
  expect(body.error?.code).toBe(code)
  expect(typeof body.error?.message).toBe('string')
  expect(
    Object.keys(body.error ?? {}).every((key) => ['code', 'message', 'details'].includes(key)),
  ).toBe(true)
  expect(text).not.toContain('statusCode')
}

describe('bad input', () => {
  let server: TestServer
  let url: string

  beforeAll(async () => {
    server = await startServer()
    url = server.url
  })
  afterAll(async () => {
    await server.close()
  })

  const post = (rawBody: string, headers: Record<string, string> = {}) =>
    send(`${url}/v1/subscriptions`, { method: 'POST', rawBody, headers })

  describe('request bodies', () => {
    it('answers malformed JSON with 400 invalid_argument', async () => {
      for (const body of [
        '{"datastream_id":',
        '{datastream_id: 5}',
        "{'datastream_id':5}",
        '{"datastream_id":5}}',
        'nul',
        '\u00ff\u00fe',
      ]) {
        expectEnvelope(await post(body), 400, 'invalid_argument')
      }
    })

    it.each([
      ['a string', '"5"'],
      ['a fraction', '5.5'],
      ['a negative number', '-1'],
      ['zero', '0'],
      ['null', 'null'],
      ['a boolean', 'true'],
      ['an array', '[5]'],
      ['an object', '{"id":5}'],
      ['a number far beyond int64 (1e30)', '1e30'],
      ['a number just beyond int64', '9223372036854775808'],
    ])('answers datastream_id as %s with 400 invalid_argument', async (_name, value) => {
      const answer = await post(`{"datastream_id":${value}}`)
      expectEnvelope(answer, 400, 'invalid_argument')
    })

    // A datastream_id is an int64: read digit for digit, never rounded to another id (a
    // JSON.parse double rounds 2^53 + 1 to 2^53 and 2^63 - 1 to 2^63), on every route.
    describe.each([
      ['POST /v1/subscriptions', '/v1/subscriptions', ''],
      ['POST /v1/exports', '/v1/exports', ',"start_time":1,"end_time":2'],
    ])('datastream_id on %s', (_name, path, rest) => {
      const create = (id: string) =>
        send(`${url}${path}`, { method: 'POST', rawBody: `{"datastream_id":${id}${rest}}` })

      it.each([
        '9007199254740993',
        '9007199254740992',
        '9223372036854775295',
        '9223372036854775807',
      ])('%s is an unknown datastream, named as sent', async (id) => {
        const answer = await create(id)
        expectEnvelope(answer, 404, 'not_found')
        expect(answer.json<{ error: { message: string } }>().error.message).toBe(
          `Datastream ${id} not found`,
        )
      })

      it.each([
        '9223372036854775808',
        '99999999999999999999999',
        '1e30',
        '1e19',
        '-9007199254740993',
        '9'.repeat(1000),
        // Not JSON at all: a leading zero, on either side of 2^53.
        '09007199254740993',
        '-09007199254740993',
        '007',
        // A fraction, however close to a whole number a double would make it.
        '2.00000000000000001',
        '1.0000000000000001',
        '9007199254740993.5',
        '1e-400',
      ])('%s is not an int64: 400 invalid_argument', async (id) => {
        expectEnvelope(await create(id), 400, 'invalid_argument')
      })
    })

    it('answers an export whose nanoseconds carry a leading zero as malformed JSON, and creates nothing', async () => {
      for (const field of ['start_time', 'end_time']) {
        const other = field === 'start_time' ? 'end_time' : 'start_time'
        const answer = await send(`${url}/v1/exports`, {
          method: 'POST',
          key: crypto.randomUUID(),
          rawBody: `{"datastream_id":1,"${field}":01767225600000000000,"${other}":1767225600000000001}`,
        })
        expectEnvelope(answer, 400, 'invalid_argument')
        expect(answer.json<{ error: { message: string } }>().error.message).toBe(
          'Malformed JSON body',
        )
      }
      const list = await send(`${url}/v1/exports`)
      expect(list.json<{ total: number }>().total).toBe(0)
    })

    it('answers a missing field, unknown fields and non-object bodies with 400 invalid_argument', async () => {
      for (const body of [
        '{}',
        '{"datastream_id":5,"extra":true}',
        '{"datastream_id":5,"__proto__":{"admin":true}}',
        '{"datastream_id":5,"constructor":{"prototype":{"admin":true}}}',
        '[{"datastream_id":5}]',
        '[]',
        'null',
        '5',
        '"datastream_id"',
        '',
        '   ',
      ]) {
        expectEnvelope(await post(body), 400, 'invalid_argument')
      }
    })

    it('answers deeply nested JSON with 400, not 500', async () => {
      const nested = `{"datastream_id":5,"x":${'['.repeat(5000)}${']'.repeat(5000)}}`
      expectEnvelope(await post(nested), 400, 'invalid_argument')
    })

    it('answers a body that is not application/json with 400 invalid_argument', async () => {
      for (const contentType of [
        'text/plain',
        'application/x-www-form-urlencoded',
        'application/xml',
        'multipart/form-data; boundary=x',
      ]) {
        const answer = await post('{"datastream_id":5}', { 'content-type': contentType })
        expectEnvelope(answer, 400, 'invalid_argument')
      }
      const raw = await sendRaw(
        url,
        rawHead(url, 'POST', '/v1/subscriptions', ['Content-Length: 19']),
        '{"datastream_id":5}',
      )
      expectEnvelope(raw, 400, 'invalid_argument')
    })

    it('answers bytes that are not UTF-8 as malformed, on every JSON route, and creates nothing', async () => {
      const invalid = Buffer.from([0xff, 0xfe, 0xc0, 0x80])
      const schema = (tag: Buffer) =>
        Buffer.concat([
          Buffer.from(
            '{"name":"latin","stream_category":"trade","columns":[{"output_column":"ts","meta":{"value":"collection_timestamp_ns"}}],"derive":{"binance":[{"field":"f","concat":[{"path":"p","tag":"',
          ),
          tag,
          Buffer.from('"}]}]}}'),
        ])
      for (const [path, body] of [
        ['/v1/export-schemas', schema(invalid)],
        [
          '/v1/subscriptions',
          Buffer.concat([Buffer.from('{"datastream_id":5'), invalid, Buffer.from('}')]),
        ],
      ] as const) {
        const answer = await send(`${url}${path}`, {
          method: 'POST',
          key: crypto.randomUUID(),
          rawBody: body,
        })
        expectEnvelope(answer, 400, 'invalid_argument')
        expect(answer.json<{ error: { message: string } }>().error.message).toBe(
          'Malformed JSON body: it is not UTF-8',
        )
      }
      const schemas = await send(`${url}/v1/export-schemas`)
      expect(schemas.text).not.toContain('"latin"')
    })

    it('answers a JSON body labelled with a charset other than UTF-8 with 400, and takes UTF-8 in any spelling', async () => {
      for (const charset of ['latin1', 'ISO-8859-1', '"utf-16"', 'us-ascii']) {
        const answer = await post('{"datastream_id":5}', {
          'content-type': `application/json; charset=${charset}`,
        })
        expectEnvelope(answer, 400, 'invalid_argument')
        expect(answer.json<{ error: { message: string } }>().error.message).toMatch(
          /^Content-Type charset .+ is not supported: send the body as UTF-8$/,
        )
      }
      for (const charset of ['utf-8', 'UTF-8', '"utf-8"', 'utf8']) {
        // An unknown datastream: the body was read, and the call ran to its own answer.
        const answer = await post('{"datastream_id":999999}', {
          'content-type': `application/json; charset=${charset}`,
        })
        expectEnvelope(answer, 404, 'not_found')
      }
    })

    it('answers a body over the limit with an error envelope, not a 500', async () => {
      const answer = await post(`{"datastream_id":5,"pad":"${'x'.repeat(1_100_000)}"}`)
      expect(answer.status).toBeGreaterThanOrEqual(400)
      expect(answer.status).toBeLessThan(500)
      expectEnvelope(answer, answer.status, 'invalid_argument')
    })

    it('creates nothing for any of the bad bodies above', async () => {
      const list = await send(`${url}/v1/subscriptions`)
      expect(list.json<{ total: number }>().total).toBe(0)
    })
  })

  describe('query strings', () => {
    it('answers absurd limits with 400 invalid_argument', async () => {
      for (const path of [
        '/v1/subscriptions',
        '/v1/datastreams',
        '/v1/exchanges/binance/instruments',
      ]) {
        for (const limit of [
          '99999999999',
          '-1',
          '1e2',
          '0x10',
          '%20',
          '1%00',
          '18446744073709551617',
        ]) {
          expectEnvelope(await send(`${url}${path}?limit=${limit}`), 400, 'invalid_argument')
        }
      }
    })

    it('answers repeated query parameters with 400 invalid_argument', async () => {
      for (const path of [
        '/v1/subscriptions?limit=1&limit=2',
        '/v1/subscriptions?page_token=a&page_token=b',
        '/v1/datastreams?exchange=binance&exchange=coinbase',
        '/v1/datastreams?stream_type=trade&stream_type=trade',
        '/v1/exchanges/binance/instruments?search=B&search=E',
      ]) {
        expectEnvelope(await send(`${url}${path}`), 400, 'invalid_argument')
      }
    })
  })

  describe('paths', () => {
    it('answers malformed subscription ids with the 404 envelope', async () => {
      for (const id of [
        'x',
        'sub_',
        'sub_%00',
        '%20',
        'sub_0123456789abcdef0123456789abcdeg',
        '..%2F..%2Fexchanges',
      ]) {
        for (const suffix of ['', '/spans']) {
          expectEnvelope(await send(`${url}/v1/subscriptions/${id}${suffix}`), 404, 'not_found')
        }
      }
    })

    it('answers an id with a broken percent-encoding with the 404 envelope', async () => {
      for (const path of [
        '/v1/subscriptions/%zz',
        '/v1/subscriptions/%E0%A4%A',
        '/v1/subscriptions/%zz/spans',
      ]) {
        expectEnvelope(await send(`${url}${path}`), 404, 'not_found')
      }
      const keyed = await send(`${url}/v1/subscriptions/%zz/pause`, {
        method: 'POST',
        key: crypto.randomUUID(),
      })
      expectEnvelope(keyed, 404, 'not_found')
    })

    it('answers an absurdly long id with the 404 envelope', async () => {
      for (const suffix of ['', '/spans', '/pause']) {
        const answer = await send(`${url}/v1/subscriptions/sub_${'a'.repeat(300)}${suffix}`, {
          method: suffix === '/pause' ? 'POST' : 'GET',
        })
        expectEnvelope(answer, 404, 'not_found')
      }
    })

    // A malformed id is the operation's own answer (step 5): stored and replayed under its key,
    // after the key's format was checked, whatever the router made of the path.
    it.each([
      ['a broken percent-encoding', '%zz'],
      ['an escape that is not UTF-8', 'sub_%FF'],
      ['a truncated escape', 'sub_%E0%A4%A'],
      ['an id of 101 characters', `sub_${'a'.repeat(97)}`],
      ['an id of 5,000 characters', `sub_${'a'.repeat(4996)}`],
    ])('answers a keyed call on %s with a stored 404, after the key check', async (_name, id) => {
      const path = `${url}/v1/subscriptions/${id}/pause`
      const key = crypto.randomUUID()
      const first = await send(path, { method: 'POST', key })
      expectEnvelope(first, 404, 'not_found')
      expect(first.headers.get('idempotent-replayed')).toBeNull()
      const replay = await send(path, { method: 'POST', key })
      expect(replay.status).toBe(404)
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      expect(replay.text).toBe(first.text)
      // Another path under the same key is another request.
      const other = await send(`${url}/v1/subscriptions/sub_${'0'.repeat(32)}/pause`, {
        method: 'POST',
        key,
      })
      expectEnvelope(other, 409, 'already_exists')
      expectEnvelope(
        await send(path, { method: 'POST', key: 'not-a-key' }),
        400,
        'invalid_argument',
      )
    })

    it("answers unknown routes and methods with the 404 envelope, never Fastify's default shape", async () => {
      const cases: [string, string][] = [
        ['GET', '/v1/nope'],
        ['GET', '/nope'],
        ['GET', '/'],
        ['GET', '/v1'],
        ['GET', '/v1/'],
        ['GET', '/v1/subscriptions/x/y/z'],
        ['POST', '/v1/exchanges'],
        ['DELETE', '/v1/subscriptions'],
        ['PATCH', '/v1/subscriptions'],
        ['GET', '/V1/exchanges'],
        ['GET', '/v1/exchanges/'],
      ]
      for (const [method, path] of cases) {
        const answer = await send(`${url}${path}`, { method })
        expectEnvelope(answer, 404, 'not_found')
      }
    })
  })

  describe('authentication', () => {
    it('answers a missing, empty or unknown API key with 401 "Invalid or missing API key"', async () => {
      for (const apiKey of [
        null,
        '',
        'nope',
        `${ACME_KEY}x`,
        ACME_KEY.toUpperCase(),
        `${ACME_KEY}, ${ACME_KEY}`,
      ]) {
        for (const [method, path] of [
          ['GET', '/v1/exchanges'],
          ['GET', '/v1/subscriptions'],
          ['POST', '/v1/subscriptions'],
          ['DELETE', '/v1/subscriptions/sub_0123456789abcdef0123456789abcdef'],
        ] as const) {
          const answer = await send(`${url}${path}`, {
            method,
            apiKey,
            ...(method === 'POST' ? { body: { datastream_id: 1 } } : {}),
          })
          expectEnvelope(answer, 401, 'unauthenticated')
          expect(answer.json<{ error: { message: string } }>().error.message).toBe(
            'Invalid or missing API key',
          )
        }
      }
    })

    it('reads the API key header name in any letter case', async () => {
      const answer = await send(`${url}/v1/exchanges`, {
        apiKey: null,
        headers: { 'X-API-KEY': ACME_KEY },
      })
      expect(answer.status).toBe(200)
      expect(answer.headers.get('x-request-id')).toMatch(REQUEST_ID)
    })

    it('answers two X-Api-Key header lines with 401', async () => {
      const target = new URL(url)
      const answer = await sendRaw(
        url,
        [
          'GET /v1/exchanges HTTP/1.1',
          `Host: ${target.host}`,
          `X-Api-Key: ${ACME_KEY}`,
          `X-Api-Key: ${ACME_KEY}`,
          'Connection: close',
        ].join('\r\n'),
      )
      expectEnvelope(answer, 401, 'unauthenticated')
    })
  })

  describe('malformed HTTP', () => {
    it('keeps serving after malformed request bytes, and answers them 400 without a 500', async () => {
      const target = new URL(url)
      for (const head of [
        'GARBAGE\u0001\u0002 / HTTP/1.1\r\nHost: x',
        `POST /v1/subscriptions HTTP/1.1\r\nHost: ${target.host}\r\nContent-Length: abc`,
        `GET /v1/exchanges HTTP/1.1\r\nHost: ${target.host}\r\nBad Header Line`,
      ]) {
        const answer = await sendRaw(url, head)
        expect(answer.status, head).toBe(400)
      }
      expect((await send(`${url}/v1/exchanges`)).status).toBe(200)
    })

    it('answers malformed request bytes with the envelope and an X-Request-Id, as every response', async () => {
      const answer = await sendRaw(url, 'GARBAGE\u0001\u0002 / HTTP/1.1\r\nHost: x')
      expectEnvelope(answer, 400, 'invalid_argument')
    })
  })
})

// A call that takes no body refuses one with content (decision 0005: nothing sent is silently
// dropped), before the key is claimed; no body, an empty one, and `{}` pass.
describe('a body sent to a call that takes none', () => {
  let server: TestServer
  let url: string
  const nextDatastream = datastreamIds(1)

  beforeAll(async () => {
    server = await startServer()
    url = server.url
  })
  afterAll(async () => {
    await server.close()
  })

  const call = (method: string, path: string, rawBody?: string, key?: string) =>
    send(`${url}${path}`, {
      method,
      ...(rawBody === undefined ? {} : { rawBody }),
      ...(key === undefined ? {} : { key }),
    })

  it.each(['{"x":1}', '{"force":true}', '[]', '[1]', '42', 'null', '"text"', 'true'])(
    'answers %s on pause, resume and delete with 400, and nothing changes',
    async (rawBody) => {
      const subscription = await subscribe(url, nextDatastream())
      const path = `/v1/subscriptions/${subscription.id}`
      const spans = (await spansOf(url, subscription.id)).length
      for (const [method, target] of [
        ['POST', `${path}/pause`],
        ['POST', `${path}/resume`],
        ['DELETE', path],
      ] as const) {
        expectEnvelope(await call(method, target, rawBody), 400, 'invalid_argument')
      }
      expect((await send(`${url}${path}`)).json<{ status: string }>().status).toBe('active')
      expect(await spansOf(url, subscription.id)).toHaveLength(spans)
    },
  )

  it('refuses before the claim: the same key, sent again without the body, runs the call', async () => {
    const subscription = await subscribe(url, nextDatastream())
    const path = `/v1/subscriptions/${subscription.id}/pause`
    const key = crypto.randomUUID()
    const claimsBefore = server.claims()
    expectEnvelope(await call('POST', path, '{"x":1}', key), 400, 'invalid_argument')
    expect(server.claims()).toBe(claimsBefore)
    const paused = await call('POST', path, undefined, key)
    expect(paused.status).toBe(204)
    expect(paused.headers.get('idempotent-replayed')).toBeNull()
    expect(server.claims() - claimsBefore).toBe(1)
  })

  it('takes no body, an empty body and {} alike', async () => {
    for (const rawBody of [undefined, '', '{}', ' { } ']) {
      const subscription = await subscribe(url, nextDatastream())
      const path = `/v1/subscriptions/${subscription.id}`
      expect((await call('POST', `${path}/pause`, rawBody)).status).toBe(204)
      expect((await call('POST', `${path}/resume`, rawBody)).status).toBe(204)
      expect((await call('DELETE', path, rawBody)).status).toBe(204)
      expect((await send(`${url}${path}`)).json<{ status: string }>().status).toBe('deleted')
    }
  })
})

describe('a body in a content coding the server does not decode', () => {
  let server: TestServer
  let url: string
  const nextDatastream = datastreamIds(1)

  beforeAll(async () => {
    server = await startServer()
    url = server.url
  })
  afterAll(async () => {
    await server.close()
  })

  const keyedPost = (body: Buffer, encoding: string | undefined, key: string) => {
    const head = [
      'POST /v1/subscriptions HTTP/1.1',
      `Host: ${new URL(url).host}`,
      `X-Api-Key: ${ACME_KEY}`,
      `Idempotency-Key: ${key}`,
      'Content-Type: application/json',
      ...(encoding === undefined ? [] : [`Content-Encoding: ${encoding}`]),
      `Content-Length: ${String(body.length)}`,
      'Connection: close',
    ].join('\r\n')
    return sendRaw(url, head, body.toString('latin1'))
  }

  it.each(['gzip', 'br', 'deflate', 'GZIP', 'identity, gzip', 'x-custom'])(
    'refuses a body labelled %s with 400 before the claim, and the key still works',
    async (encoding) => {
      const datastream = nextDatastream()
      const body = Buffer.from(JSON.stringify({ datastream_id: datastream }))
      const key = crypto.randomUUID()
      const claimsBefore = server.claims()
      const refused = await keyedPost(body, encoding, key)
      expectEnvelope(refused, 400, 'invalid_argument')
      expect(refused.text).toContain('Content-Encoding')
      expect(server.claims()).toBe(claimsBefore)
      const created = await keyedPost(body, undefined, key)
      expect(created.status).toBe(201)
      expect(server.claims() - claimsBefore).toBe(1)
    },
  )

  it('refuses a really gzipped body by its coding, not as malformed JSON', async () => {
    const body = gzipSync(JSON.stringify({ datastream_id: nextDatastream() }))
    const refused = await keyedPost(body, 'gzip', crypto.randomUUID())
    expectEnvelope(refused, 400, 'invalid_argument')
    expect(refused.text).toContain('Content-Encoding gzip is not supported')
  })

  it('takes a body labelled identity as it is', async () => {
    const body = Buffer.from(JSON.stringify({ datastream_id: nextDatastream() }))
    expect((await keyedPost(body, 'identity', crypto.randomUUID())).status).toBe(201)
  })
})
