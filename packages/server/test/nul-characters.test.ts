/**
 * A NUL character in the text a request carries: in a query value or a JSON string or key it is
 * refused with 400 before anything runs; in a path parameter (`%00`) it names nothing, so 404,
 * on every route and on both databases. Found by the fuzzer: PostgreSQL cannot store NUL in
 * text, so `GET /v1/exchanges/%00/instruments` answered 500 there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Answer, TestServer } from './support/server.js'
import { errorOf, newKey, send, startServer } from './support/server.js'

function expectRefused(answer: Answer, part: 'query' | 'body'): void {
  expect(answer.status, answer.text).toBe(400)
  expect(errorOf(answer)).toEqual({
    code: 'invalid_argument',
    message: `The request ${part} contains a NUL character`,
  })
}

describe('NUL characters in requests', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(async () => {
    await server.close()
  })

  it('answers %00 in a path parameter as a resource that does not exist, on every route', async () => {
    const withParameters = server.app.routes.filter(
      (route) => route.method !== 'HEAD' && /[:*]/.test(route.url),
    )
    expect(withParameters.length).toBeGreaterThan(10)
    for (const route of withParameters) {
      const path = route.url.replace(/:[A-Za-z]+|\*/g, 'x%00y')
      const keyed = route.method === 'POST' || route.method === 'DELETE'
      const request = {
        method: route.method,
        ...(route.method === 'PUT' ? { body: {} } : {}),
        ...(keyed ? { key: newKey() } : {}),
      }
      const answer = await send(`${server.url}${path}`, request)
      expect(answer.status, `${route.method} ${route.url}: ${answer.text}`).toBe(404)
      expect(errorOf(answer).code).toBe('not_found')
      if (keyed) {
        // The operation's own 404, stored under the key as the contract says.
        const again = await send(`${server.url}${path}`, request)
        expect(again.headers.get('idempotent-replayed'), `${route.method} ${route.url}`).toBe(
          'true',
        )
      }
    }
  })

  it('refuses it in a query value and in any string or key of a JSON body', async () => {
    expectRefused(
      await send(`${server.url}/v1/exchanges/binance/instruments?search=BTC%00`),
      'query',
    )
    expectRefused(await send(`${server.url}/v1/datastreams?exchange=%00`), 'query')
    expectRefused(
      await send(`${server.url}/v1/export-schemas`, {
        body: {
          name: 'a\u0000b',
          stream_category: 'trade',
          columns: [{ output_column: 'ts', meta: { value: 'collection_timestamp_ns' } }],
        },
      }),
      'body',
    )
    expectRefused(
      await send(`${server.url}/v1/exports`, {
        body: {
          datastream_id: 1,
          start_time: '1',
          end_time: '2',
          format_options: { 'x\u0000': 1 },
        },
      }),
      'body',
    )
    expectRefused(
      await send(`${server.url}/downloads/art_x?expires=1&sig=%00`, { apiKey: null }),
      'query',
    )
  })

  it('runs nothing and keeps the idempotency key usable', async () => {
    const key = newKey()
    const name = `nul_${newKey().slice(0, 8)}`
    const body = (text: string) => ({
      name: text,
      stream_category: 'trade',
      columns: [{ output_column: 'ts', meta: { value: 'collection_timestamp_ns' } }],
    })
    const claimsBefore = server.claims()
    const refused = await send(`${server.url}/v1/export-schemas`, {
      key,
      body: body(`${name}\u0000`),
    })
    expectRefused(refused, 'body')
    expect(server.claims()).toBe(claimsBefore)
    const fixed = await send(`${server.url}/v1/export-schemas`, { key, body: body(name) })
    expect(fixed.status, fixed.text).toBe(201)
    expect(fixed.headers.get('idempotent-replayed')).toBeNull()
    expect(server.claims()).toBe(claimsBefore + 1)
  })

  it('still accepts text with other control characters and unicode', async () => {
    const answer = await send(
      `${server.url}/v1/exchanges/binance/instruments?search=%01%E2%80%AE%F0%9F%98%80`,
    )
    expect(answer.status, answer.text).toBe(200)
  })
})
