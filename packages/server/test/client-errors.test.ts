/**
 * Requests that never reach a route: a missing, repeated or malformed Host, bytes that do not
 * parse as HTTP, CONNECT. Each gets the error envelope with a request id, `nosniff` and
 * `Connection: close`, written over raw TCP, and never corrupts an answer already in flight.
 */
import { randomUUID } from 'node:crypto'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RawAnswer, TestServer } from './support/server.js'
import { ACME_KEY, sendRaw, startServer } from './support/server.js'
import { expectRawEnvelope, sendTarget } from './support/raw-http.js'

let server: TestServer

beforeAll(async () => {
  server = await startServer()
})
afterAll(async () => {
  await server.close()
})

/** A client error: the envelope, `nosniff`, and the connection closed after it. */
function expectClientError(answer: RawAnswer, status = 400, code = 'invalid_argument'): void {
  expectRawEnvelope(answer, status, code)
  expect(answer.headers['x-content-type-options']).toBe('nosniff')
  expect(answer.headers['connection']?.toLowerCase()).toBe('close')
  expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.text))
}

/** Writes `bytes` as they are and reads everything until the server closes the connection. */
function exchange(bytes: string): Promise<string> {
  const target = new URL(server.url)
  return new Promise((done, fail) => {
    const socket = connect(Number(target.port), target.hostname)
    let received = ''
    socket.setTimeout(15_000, () => socket.destroy(new Error('no answer in 15 s')))
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk))
    socket.on('error', fail)
    socket.on('close', () => {
      done(received)
    })
    socket.write(bytes)
  })
}

describe('the Host header', () => {
  it('answers an HTTP/1.1 request without Host with the 400 envelope', async () => {
    for (const target of ['/v1/exchanges', '/openapi.json', '/nope']) {
      const answer = await sendTarget(server.url, 'GET', target, { host: null, apiKey: ACME_KEY })
      expectClientError(answer)
      expect(answer.text).toContain('Host')
    }
  })

  it('answers two Host header lines with the 400 envelope', async () => {
    const answer = await sendTarget(server.url, 'GET', '/v1/exchanges', {
      apiKey: ACME_KEY,
      extraLines: ['Host: other.example'],
    })
    expectClientError(answer)
  })

  it('answers a Host that is not a host name with the 400 envelope', async () => {
    for (const host of ['', 'evil.example/path?', 'a b', 'user@evil.example', 'x:port', '[::1']) {
      const answer = await sendTarget(server.url, 'GET', '/v1/exchanges', {
        host,
        apiKey: ACME_KEY,
      })
      expectClientError(answer)
    }
  })

  it('serves the host names clients send', async () => {
    for (const host of [
      'localhost',
      '127.0.0.1:8080',
      '[::1]:80',
      'api.example.com',
      'a_b.example',
    ]) {
      const answer = await sendTarget(server.url, 'GET', '/v1/exchanges', {
        host,
        apiKey: ACME_KEY,
      })
      expect(answer.status, `${host}: ${answer.text}`).toBe(200)
    }
  })

  it('serves an HTTP/1.0 request without Host, which HTTP/1.0 allows', async () => {
    const answer = await sendRaw(
      server.url,
      ['GET /v1/exchanges HTTP/1.0', `X-Api-Key: ${ACME_KEY}`].join('\r\n'),
    )
    expect(answer.status, answer.text).toBe(200)
  })
})

describe('bytes that are not an HTTP request', () => {
  const host = () => new URL(server.url).host
  it.each([
    ['not HTTP at all', () => 'NOT HTTP AT ALL'],
    ['an unknown HTTP version', () => `GET /v1/exchanges HTTP/9.9\r\nHost: ${host()}`],
    ['a method in lower case', () => `get /v1/exchanges HTTP/1.1\r\nHost: ${host()}`],
    ['a space inside the target', () => `GET /v1/ex changes HTTP/1.1\r\nHost: ${host()}`],
    [
      'a header line without a colon',
      () => `GET /v1/exchanges HTTP/1.1\r\nHost: ${host()}\r\nnocolon`,
    ],
    [
      'a NUL in a header value',
      () => `GET /v1/exchanges HTTP/1.1\r\nHost: ${host()}\r\nX-A: a\u0000b`,
    ],
    [
      'headers over the size limit',
      () => `GET /v1/exchanges HTTP/1.1\r\nHost: ${host()}\r\nX-Big: ${'a'.repeat(20_000)}`,
    ],
    [
      'both Content-Length and Transfer-Encoding',
      () =>
        `POST /v1/subscriptions HTTP/1.1\r\nHost: ${host()}\r\nContent-Length: 2\r\nTransfer-Encoding: chunked`,
    ],
  ])('answers %s with the 400 envelope', async (_name, head) => {
    expectClientError(await sendRaw(server.url, head()))
  })

  // The broken bytes come after the head, in the body of a request already routed: it can never
  // arrive whole. One answer, at once (not the deadline's 408 ten seconds later, then ours).
  it.each([
    ['a chunk size that is not hex', '5\r\n{"dat\r\nZZ\r\n'],
    ['a chunk without its CRLF', '5\r\n{"datastream_id":1}\r\n0\r\n\r\n'],
  ])(
    'answers a body with %s once, with the 400 envelope, and runs nothing',
    async (_name, body) => {
      const claimsBefore = server.claims()
      for (const key of [[], [`Idempotency-Key: ${randomUUID()}`]]) {
        const head = [
          'POST /v1/subscriptions HTTP/1.1',
          `Host: ${host()}`,
          `X-Api-Key: ${ACME_KEY}`,
          'Content-Type: application/json',
          'Transfer-Encoding: chunked',
          ...key,
        ].join('\r\n')
        const received = await exchange(`${head}\r\n\r\n${body}`)
        const answers = received.split(/(?=HTTP\/1\.1 \d{3} )/)
        expect(answers.map((answer) => answer.slice(0, 12))).toEqual(['HTTP/1.1 400'])
        expect(answers[0]).toContain('"code":"invalid_argument"')
      }
      expect(server.claims()).toBe(claimsBefore)
    },
  )

  it('answers a bad request after a good one on a kept-alive connection after the good one’s answer, intact', async () => {
    const good = `GET /v1/exchanges HTTP/1.1\r\nHost: ${host()}\r\nX-Api-Key: ${ACME_KEY}\r\n\r\n`
    const received = await exchange(`${good}${good}GARBAGE\r\n\r\n`)
    const answers = received.split(/(?=HTTP\/1\.1 \d{3} )/)
    expect(answers.map((answer) => answer.slice(0, 12))).toEqual([
      'HTTP/1.1 200',
      'HTTP/1.1 200',
      'HTTP/1.1 400',
    ])
    for (const answer of answers.slice(0, 2)) expect(answer).toContain('"code":"binance"')
    expect(answers[2]).toContain('"code":"invalid_argument"')
  })
})

describe('CONNECT', () => {
  it('answers CONNECT with the 400 envelope instead of closing the connection silently', async () => {
    for (const head of [
      'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443',
      `CONNECT ${new URL(server.url).host} HTTP/1.1\r\nHost: ${new URL(server.url).host}\r\nX-Api-Key: ${ACME_KEY}`,
    ]) {
      const answer = await sendRaw(server.url, head)
      expectClientError(answer)
      expect(answer.text).toContain('CONNECT')
    }
  })
})

describe('an Expect other than 100-continue', () => {
  it.each(['', 'foo', '200-ok', 'x=y; z'])(
    'is ignored (%j): the request is answered as if it had none, in the envelope',
    async (expectation) => {
      const host = `Host: ${new URL(server.url).host}`
      const stranger = await sendRaw(
        server.url,
        `GET /v1/exchanges HTTP/1.1\r\n${host}\r\nExpect: ${expectation}\r\nConnection: close`,
      )
      expectRawEnvelope(stranger, 401, 'unauthenticated')
      const account = await sendRaw(
        server.url,
        `GET /v1/exchanges HTTP/1.1\r\n${host}\r\nX-Api-Key: ${ACME_KEY}\r\nExpect: ${expectation}\r\nConnection: close`,
      )
      expect(account.status).toBe(200)
      expect(account.headers['x-request-id']).toMatch(/^req_[0-9a-f]{16}$/)
    },
  )

  it('runs a keyed create once, as without it', async () => {
    const body = JSON.stringify({ datastream_id: 77 })
    const head = (key: string) =>
      [
        'POST /v1/subscriptions HTTP/1.1',
        `Host: ${new URL(server.url).host}`,
        `X-Api-Key: ${ACME_KEY}`,
        `Idempotency-Key: ${key}`,
        'Expect: something-else',
        'Content-Type: application/json',
        `Content-Length: ${String(body.length)}`,
        'Connection: close',
      ].join('\r\n')
    const key = randomUUID()
    const created = await sendRaw(server.url, head(key), body)
    const replayed = await sendRaw(server.url, head(key), body)
    expect([created.status, replayed.status]).toEqual([201, 201])
    expect(replayed.headers['idempotent-replayed']).toBe('true')
    expect(replayed.text).toBe(created.text)
  })
})
