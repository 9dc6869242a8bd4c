import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createClient } from '../src/index.js'
import type { TicksupplyClient } from '../src/index.js'
import type { RecordedRequest, TestHttpServer } from './support/test-http-server.js'
import { sendJson, startTestHttpServer } from './support/test-http-server.js'

/**
 * How each method shapes its request. Exports, schemas and billing are checked against a
 * recording server here; the live server covers catalog and subscriptions elsewhere.
 */

let server: TestHttpServer
let client: TicksupplyClient
let reply: { status: number; body?: unknown } = { status: 200, body: {} }

beforeAll(async () => {
  server = await startTestHttpServer((_request, response) => {
    sendJson(response, reply.status, reply.body)
  })
  client = createClient({ apiKey: 'shape-key-0123456789', baseUrl: `${server.url}/` })
})
afterAll(async () => {
  await server.close()
})
beforeEach(() => {
  reply = { status: 200, body: {} }
})

function last(): RecordedRequest {
  const request = server.requests.at(-1)
  if (request === undefined) throw new Error('no request arrived')
  return request
}

const MUTATIONS: readonly [
  string,
  (c: TicksupplyClient) => Promise<unknown>,
  string,
  string,
  string,
][] = [
  [
    'subscriptions.create',
    (c) => c.subscriptions.create({ datastream_id: 9 }),
    'POST',
    '/v1/subscriptions',
    '{"datastream_id":9}',
  ],
  [
    'subscriptions.pause',
    (c) => c.subscriptions.pause('sub_a'),
    'POST',
    '/v1/subscriptions/sub_a/pause',
    '',
  ],
  [
    'subscriptions.resume',
    (c) => c.subscriptions.resume('sub_a'),
    'POST',
    '/v1/subscriptions/sub_a/resume',
    '',
  ],
  [
    'subscriptions.delete',
    (c) => c.subscriptions.delete('sub_a'),
    'DELETE',
    '/v1/subscriptions/sub_a',
    '',
  ],
  [
    'exports.create',
    (c) =>
      c.exports.create({
        datastream_id: 3,
        start_time: '2026-11-01T00:00:00Z',
        end_time: '1793577600000000000',
        schema: 'normalized',
        format: 'parquet',
      }),
    'POST',
    '/v1/exports',
    '{"datastream_id":3,"start_time":"2026-11-01T00:00:00Z","end_time":"1793577600000000000","schema":"normalized","format":"parquet"}',
  ],
  ['exports.cancel', (c) => c.exports.cancel('exp_a'), 'POST', '/v1/exports/exp_a/cancel', ''],
  ['exports.delete', (c) => c.exports.delete('exp_a'), 'DELETE', '/v1/exports/exp_a', ''],
  [
    'exportSchemas.create',
    (c) =>
      c.exportSchemas.create({
        name: 'mine',
        stream_category: 'trade',
        columns: [
          { output_column: 'ts', meta: { value: 'collection_timestamp_ns', format: 'ms' } },
        ],
      }),
    'POST',
    '/v1/export-schemas',
    '{"name":"mine","stream_category":"trade","columns":[{"output_column":"ts","meta":{"value":"collection_timestamp_ns","format":"ms"}}]}',
  ],
  [
    'exportSchemas.delete',
    (c) => c.exportSchemas.delete('sch_a'),
    'DELETE',
    '/v1/export-schemas/sch_a',
    '',
  ],
  [
    'exportSchemas.createDraft (copy)',
    (c) => c.exportSchemas.createDraft('sch_a'),
    'POST',
    '/v1/export-schemas/sch_a/draft',
    '',
  ],
  [
    'exportSchemas.createDraft (body)',
    (c) => c.exportSchemas.createDraft('sch_a', { columns: [], unfold: null }),
    'POST',
    '/v1/export-schemas/sch_a/draft',
    '{"columns":[],"unfold":null}',
  ],
  [
    'exportSchemas.deleteDraft',
    (c) => c.exportSchemas.deleteDraft('sch_a'),
    'DELETE',
    '/v1/export-schemas/sch_a/draft',
    '',
  ],
  [
    'exportSchemas.publish',
    (c) => c.exportSchemas.publish('sch_a'),
    'POST',
    '/v1/export-schemas/sch_a/publish',
    '',
  ],
]

const READS: readonly [
  string,
  (c: TicksupplyClient) => Promise<unknown>,
  string,
  string,
  string,
][] = [
  ['exchanges.list', (c) => c.exchanges.list(), 'GET', '/v1/exchanges', ''],
  [
    'instruments.list',
    (c) => c.instruments.list('bybit spot', { search: 'bt', limit: 5, page_token: 'abc' }),
    'GET',
    '/v1/exchanges/bybit%20spot/instruments?search=bt&limit=5&page_token=abc',
    '',
  ],
  [
    'datastreams.list',
    (c) => c.datastreams.list({ exchange: 'binance', instrument: 'BTCUSDT', stream_type: 'kline' }),
    'GET',
    '/v1/datastreams?exchange=binance&instrument=BTCUSDT&stream_type=kline',
    '',
  ],
  [
    'subscriptions.list',
    (c) => c.subscriptions.list({ limit: 2 }),
    'GET',
    '/v1/subscriptions?limit=2',
    '',
  ],
  ['subscriptions.get', (c) => c.subscriptions.get('sub_a'), 'GET', '/v1/subscriptions/sub_a', ''],
  [
    'subscriptions.spans',
    (c) => c.subscriptions.spans('sub_a'),
    'GET',
    '/v1/subscriptions/sub_a/spans',
    '',
  ],
  [
    'exports.list',
    (c) => c.exports.list({ page_token: 't' }),
    'GET',
    '/v1/exports?page_token=t',
    '',
  ],
  ['exports.get', (c) => c.exports.get('exp_a'), 'GET', '/v1/exports/exp_a', ''],
  ['exports.download', (c) => c.exports.download('exp_a'), 'GET', '/v1/exports/exp_a/download', ''],
  ['exportSchemas.list', (c) => c.exportSchemas.list(), 'GET', '/v1/export-schemas', ''],
  ['exportSchemas.get', (c) => c.exportSchemas.get('sch_a'), 'GET', '/v1/export-schemas/sch_a', ''],
  [
    'exportSchemas.getDraft',
    (c) => c.exportSchemas.getDraft('sch_a'),
    'GET',
    '/v1/export-schemas/sch_a/draft',
    '',
  ],
  [
    'exportSchemas.updateDraft',
    (c) => c.exportSchemas.updateDraft('sch_a', { columns: [] }),
    'PUT',
    '/v1/export-schemas/sch_a/draft',
    '{"columns":[]}',
  ],
  ['billing.summary', (c) => c.billing.summary(), 'GET', '/v1/billing/summary', ''],
]

describe('every POST and DELETE method', () => {
  it.each(MUTATIONS)(
    '%s sends %s %s with its body and an idempotency key',
    async (_name, call, method, url, body) => {
      await call(client)

      const request = last()
      expect([request.method, request.url, request.body]).toEqual([method, url, body])
      expect(request.headers['x-api-key']).toBe('shape-key-0123456789')
      expect(request.headers['idempotency-key']).toMatch(/^[0-9a-f-]{36}$/)
      expect(request.headers['content-type']).toBe(body === '' ? undefined : 'application/json')
    },
  )
})

describe('every GET and PUT method', () => {
  it.each(READS)(
    '%s sends %s %s without an idempotency key',
    async (_name, call, method, url, body) => {
      // The unpaged lists answer an array, and the client checks that they do.
      if (/^\/v1\/(exchanges|export-schemas|subscriptions\/[^/]+\/spans)$/.test(url)) {
        reply = { status: 200, body: [] }
      }
      await call(client)

      const request = last()
      expect([request.method, request.url, request.body]).toEqual([method, url, body])
      expect(request.headers['x-api-key']).toBe('shape-key-0123456789')
      expect(request.headers['idempotency-key']).toBeUndefined()
    },
  )
})

describe('an ID argument', () => {
  it('is encoded as one path segment', async () => {
    await client.subscriptions.get('../exports')

    expect(last().url).toBe('/v1/subscriptions/..%2Fexports')
  })

  it('is refused when empty, before anything is sent', async () => {
    const before = server.requests.length

    await expect(client.exports.get('')).rejects.toThrow(TypeError)
    expect(server.requests).toHaveLength(before)
  })
})

describe('an export job', () => {
  it('keeps every digit of its nanosecond times', async () => {
    // Written by hand: JSON.stringify could not produce these integers from numbers.
    const job =
      '{"id":"exp_a","datastream_id":3,"start_time":1793577600000000001,"end_time":1793581200123456789,' +
      '"format":"csv","format_options":{},"status":"failed","created_at":"2026-11-01T00:00:00Z",' +
      '"started_at":null,"finished_at":"2026-11-01T00:00:01Z","reason":"quoted \\"start_time\\":1"}'
    const raw = await startTestHttpServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(job)
    })
    try {
      const exports = createClient({ apiKey: 'k-0123456789abcdef', baseUrl: raw.url }).exports

      const got = await exports.get('exp_a')

      expect(got).toMatchObject({
        start_time: '1793577600000000001',
        end_time: '1793581200123456789',
        created_at: '2026-11-01T00:00:00Z',
        started_at: null,
        finished_at: '2026-11-01T00:00:01Z',
        datastream_id: 3,
        reason: 'quoted "start_time":1',
      })
    } finally {
      await raw.close()
    }
  })
})

describe('iterate', () => {
  it('walks every page with page_token and stops after the last', async () => {
    const items = Array.from({ length: 7 }, (_, index) => ({ id: `sub_${String(index)}` }))
    const paged = await startTestHttpServer((request, response) => {
      const url = new URL(request.url, 'http://x')
      const start = Number(url.searchParams.get('page_token') ?? '0')
      const limit = Number(url.searchParams.get('limit'))
      const next = start + limit < items.length ? String(start + limit) : null
      sendJson(response, 200, {
        items: items.slice(start, start + limit),
        total: items.length,
        limit,
        next_page_token: next,
      })
    })
    try {
      const pagedClient = createClient({ apiKey: 'k-0123456789abcdef', baseUrl: paged.url })
      const seen: string[] = []

      for await (const subscription of pagedClient.subscriptions.iterate({ limit: 3 })) {
        seen.push(subscription.id)
      }

      expect(seen).toEqual(items.map((item) => item.id))
      expect(paged.requests.map((request) => request.url)).toEqual([
        '/v1/subscriptions?limit=3',
        '/v1/subscriptions?limit=3&page_token=3',
        '/v1/subscriptions?limit=3&page_token=6',
      ])
    } finally {
      await paged.close()
    }
  })

  it('reads no page ahead of the loop', async () => {
    const paged = await startTestHttpServer((_request, response) => {
      sendJson(response, 200, {
        items: [{ id: 'a' }, { id: 'b' }],
        total: 100,
        limit: 2,
        next_page_token: 'more',
      })
    })
    try {
      const pagedClient = createClient({ apiKey: 'k-0123456789abcdef', baseUrl: paged.url })

      for await (const subscription of pagedClient.subscriptions.iterate()) {
        if (subscription.id === 'a') break
      }

      expect(paged.requests).toHaveLength(1)
    } finally {
      await paged.close()
    }
  })
})
