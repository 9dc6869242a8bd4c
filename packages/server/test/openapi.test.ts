/**
 * The OpenAPI 3.1 document and the docs page: served without an API key, valid, in agreement
 * with the routes the server serves, and describing every API route fully. The route schemas
 * behind it must not change what goes over the wire.
 */
import { compileErrors, validate } from '@readme/openapi-parser'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authenticate } from '../src/domain/accounts.js'
import type { Account } from '../src/domain/accounts.js'
import { billingSummary } from '../src/domain/billing.js'
import { listDatastreams, listExchanges, listInstruments } from '../src/domain/catalog.js'
import { getSubscription, listSpans, listSubscriptions } from '../src/domain/subscriptions.js'
import { renderPage } from '../src/http/pagination.js'
import type { TestServer } from './support/server.js'
import { ACME_KEY, errorOf, send, startServer, subscribe } from './support/server.js'

type Json = Record<string, unknown>
interface Operation {
  operationId?: string
  summary?: string
  tags?: string[]
  security?: unknown[]
  parameters?: { in: string; name: string; required?: boolean }[]
  responses: Record<string, { description?: string; content?: Record<string, { schema?: Json }> }>
}
interface Document {
  openapi: string
  info: Json
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, Json>; securitySchemes: Json }
  security: unknown[]
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace']
/** Routes that are not part of the API, and so not in its description. */
const UNDOCUMENTED = [/^\/docs(\/|$)/, /^\/openapi\.json$/]

let server: TestServer
let document: Document

beforeAll(async () => {
  server = await startServer()
  const answer = await send(`${server.url}/openapi.json`, { apiKey: null })
  expect(answer.status).toBe(200)
  document = answer.json<Document>()
})
afterAll(async () => {
  await server.close()
})

/** Every operation of the document as `METHOD /path/{param}`. */
function operations(): { name: string; path: string; method: string; operation: Operation }[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, operation]) => ({
        name: `${method.toUpperCase()} ${path}`,
        path,
        method,
        operation,
      })),
  )
}

describe('/openapi.json', () => {
  it('is served without an API key, as JSON, in OpenAPI 3.1', async () => {
    const answer = await send(`${server.url}/openapi.json`, { apiKey: null })
    expect(answer.headers.get('content-type')).toMatch(/^application\/json/)
    expect(document.openapi).toBe('3.1.0')
    expect(document.info).toMatchObject({ title: 'Ticksupply API', version: '1.0.0' })
    expect(document.components.securitySchemes).toEqual({
      apiKey: { type: 'apiKey', in: 'header', name: 'X-Api-Key' },
    })
    expect(document.security).toEqual([{ apiKey: [] }])
  })

  it('validates against the OpenAPI 3.1 specification', async () => {
    const result = await validate(
      structuredClone(document) as unknown as Parameters<typeof validate>[0],
    )
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true)
    expect(result.specification).toBe('OpenAPI')
  })

  it('is checked by a validator that does find errors', async () => {
    const broken = structuredClone(document) as unknown as Json & { paths: Json }
    broken.paths['/v1/broken/{id}'] = { get: { responses: { 200: { description: 'no {id}' } } } }
    const result = await validate(broken as Parameters<typeof validate>[0])
    expect(result.valid).toBe(false)
  })

  it('describes exactly the routes the server serves', () => {
    const served = server.app.routes
      .filter((route) => route.method !== 'HEAD' && !route.hidden)
      .map((route) => `${route.method} ${route.url.replace(/:([A-Za-z_]+)/g, '{$1}')}`)
    expect(new Set(served).size).toBe(served.length)
    expect(
      operations()
        .map((op) => op.name)
        .sort(),
    ).toEqual([...served].sort())
  })

  it('leaves out only the docs themselves', () => {
    const hidden = server.app.routes.filter((route) => route.hidden).map((route) => route.url)
    expect(hidden.length).toBeGreaterThan(0)
    for (const url of hidden) {
      expect(
        UNDOCUMENTED.some((pattern) => pattern.test(url)),
        `${url} is hidden`,
      ).toBe(true)
    }
  })

  it('gives every operation an id, a summary, a tag and its path parameters', () => {
    for (const { name, path, operation } of operations()) {
      expect(operation.operationId, name).toMatch(/^[a-z][A-Za-z]+$/)
      expect(operation.summary, name).toBeTruthy()
      expect(operation.tags?.length, name).toBe(1)
      const declared = (operation.parameters ?? [])
        .filter((parameter) => parameter.in === 'path')
        .map((parameter) => parameter.name)
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1])
      expect(declared.sort(), name).toEqual(inPath.sort())
    }
    const ids = operations().map(({ operation }) => operation.operationId)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('documents the success answer and the error envelope of every API operation', () => {
    const api = operations().filter(({ path }) => path.startsWith('/v1/'))
    expect(api.length).toBeGreaterThan(0)
    for (const { name, method, operation } of api) {
      const statuses = Object.keys(operation.responses)
      expect(
        statuses.some((status) => status.startsWith('2')),
        `${name} has a 2xx`,
      ).toBe(true)
      for (const status of ['401', '429', '500', '503']) expect(statuses, name).toContain(status)
      for (const [status, response] of Object.entries(operation.responses)) {
        expect(response.description, `${name} ${status}`).toBeTruthy()
        expect(response.description, `${name} ${status}`).not.toBe('Default Response')
        if (Number(status) >= 400) {
          expect(response.content?.['application/json']?.schema, `${name} ${status}`).toEqual({
            $ref: '#/components/schemas/Error',
          })
        }
      }
      expect(operation.security, name).toBeUndefined()
      const keyed = method === 'post' || method === 'delete'
      const idempotencyKey = (operation.parameters ?? []).some(
        (parameter) => parameter.in === 'header' && parameter.name === 'Idempotency-Key',
      )
      expect(idempotencyKey, name).toBe(keyed)
      if (keyed) expect(statuses, name).toEqual(expect.arrayContaining(['400', '409']))
    }
  })

  it('documents the 400 of every route and the Retry-After of the keyed 409, as the server answers them', async () => {
    for (const { name, path, method, operation } of operations()) {
      expect(Object.keys(operation.responses), name).toContain('400')
      if (path.startsWith('/v1/') && (method === 'post' || method === 'delete')) {
        const conflict = operation.responses['409'] as { headers?: Json } | undefined
        expect(conflict?.headers?.['Retry-After'], name).toEqual({
          $ref: '#/components/headers/Retry-After',
        })
      }
    }
    // Every GET with a NUL in its query: whatever it answers is in its description.
    for (const { name, path, operation } of operations().filter((op) => op.method === 'get')) {
      const answer = await send(`${server.url}${path.replace(/\{[^}]+\}/g, 'x1')}?q=%00`)
      expect(Object.keys(operation.responses), `${name}: ${answer.text}`).toContain(
        String(answer.status),
      )
    }
  })

  it('shows the query parameters of paged lists, which the code parses', () => {
    const query = (path: string) =>
      (document.paths[path]?.['get']?.parameters ?? [])
        .filter((parameter) => parameter.in === 'query')
        .map((parameter) => parameter.name)
    expect(query('/v1/subscriptions')).toEqual(['limit', 'page_token'])
    expect(query('/v1/exchanges/{exchange}/instruments')).toEqual(['search', 'limit', 'page_token'])
    expect(query('/v1/datastreams')).toEqual([
      'exchange',
      'instrument',
      'stream_type',
      'limit',
      'page_token',
    ])
  })

  it('names the resources as components', () => {
    expect(Object.keys(document.components.schemas)).toEqual(
      expect.arrayContaining([
        'Error',
        'Exchange',
        'Instrument',
        'Datastream',
        'Subscription',
        'Span',
        'BillingSummary',
      ]),
    )
  })
})

describe('/docs', () => {
  it('is a Swagger UI page, served without an API key, on the same document', async () => {
    const page = await send(`${server.url}/docs`, { apiKey: null })
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toMatch(/^text\/html/)
    expect(page.text).toContain('swagger-ui')
    const script = await send(`${server.url}/docs/static/swagger-ui-bundle.js`, { apiKey: null })
    expect(script.status).toBe(200)
    const json = await send(`${server.url}/docs/json`, { apiKey: null })
    expect(json.json()).toEqual(document)
  })
})

describe('the route schemas', () => {
  let account: Account

  beforeAll(async () => {
    account = (await authenticate(server.app.db, ACME_KEY))!
  })

  it('change nothing on the wire: every GET answers what its handler returns', async () => {
    const db = server.app.db
    const subscription = await subscribe(server.url, 7)
    await send(`${server.url}/v1/subscriptions/${subscription.id}/pause`, { method: 'POST' })
    const paged = { limit: 2, after: undefined }
    const cases: [path: string, expected: unknown][] = [
      ['/v1/exchanges', await listExchanges(db)],
      [
        '/v1/exchanges/binance/instruments?limit=2&search=b',
        renderPage(await listInstruments(db, { exchange: 'binance', search: 'b', ...paged }), 2),
      ],
      [
        '/v1/datastreams?limit=2&exchange=binance',
        renderPage(
          await listDatastreams(db, {
            exchange: 'binance',
            instrument: undefined,
            streamType: undefined,
            ...paged,
          }),
          2,
        ),
      ],
      ['/v1/subscriptions?limit=2', renderPage(await listSubscriptions(db, account, paged), 2)],
      [`/v1/subscriptions/${subscription.id}`, await getSubscription(db, account, subscription.id)],
      [`/v1/subscriptions/${subscription.id}/spans`, await listSpans(db, account, subscription.id)],
      ['/v1/billing/summary', await billingSummary(db, account.id, Date.now())],
    ]
    for (const [path, expected] of cases) {
      const answer = await send(`${server.url}${path}`)
      expect(answer.status, path).toBe(200)
      expect(answer.text, path).toBe(JSON.stringify(expected))
    }
  })

  it('leave query parameters to the code: a repeated one or a bad limit is its 400', async () => {
    const repeated = await send(`${server.url}/v1/subscriptions?limit=1&limit=2`)
    expect(repeated.status).toBe(400)
    expect(errorOf(repeated)).toEqual({
      code: 'invalid_argument',
      message: 'limit must be given once',
    })
    const bad = await send(`${server.url}/v1/datastreams?limit=abc`)
    expect(errorOf(bad).message).toBe('limit must be an integer from 1 to 1000')
    expect((await send(`${server.url}/v1/datastreams?limit=1&unknown=1`)).status).toBe(200)
  })
})
