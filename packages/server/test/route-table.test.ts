/**
 * The idempotency contract on every route the server serves, found by walking its route table:
 * a new POST or DELETE route cannot go untested, because it has no fixture until someone
 * writes one (support/route-fixtures.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RegisteredRoute } from '../src/app.js'
import type { FixtureContext, RouteRequest } from './support/route-fixtures.js'
import { KEYED_ROUTE_FIXTURES, READ_ROUTE_FIXTURES } from './support/route-fixtures.js'
import type { Answer, TestServer } from './support/server.js'
import { datastreamIds, errorOf, newKey, send, startServer } from './support/server.js'

const KEYED_METHODS = new Set(['POST', 'DELETE'])
const routeName = (route: RegisteredRoute) => `${route.method} ${route.url}`

let server: TestServer
let context: FixtureContext
/** Routes as served, without the HEAD twins Fastify adds to GET routes. */
let routes: RegisteredRoute[] = []

beforeAll(async () => {
  server = await startServer()
  context = { url: server.url, datastreamId: datastreamIds() }
  routes = server.app.routes.filter((route) => route.method !== 'HEAD')
})
afterAll(async () => {
  await server.close()
})

const sendTo = (request: RouteRequest, method: string, key?: string): Promise<Answer> =>
  send(`${server.url}${request.path}`, {
    method,
    ...(request.body === undefined ? {} : { body: request.body }),
    ...(key === undefined ? {} : { key }),
  })

const records = async () =>
  Number(
    (await server.app.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM idempotency_records'))?.n,
  )

describe('the route table', () => {
  it('has the routes this suite knows to be there', () => {
    const names = routes.map(routeName)
    expect(names).toEqual(
      expect.arrayContaining([
        'POST /v1/subscriptions',
        'DELETE /v1/subscriptions/:id',
        'GET /v1/billing/summary',
        'GET /openapi.json',
      ]),
    )
  })

  it('has a fixture for every POST and DELETE route', () => {
    const missing = routes
      .filter((route) => KEYED_METHODS.has(route.method))
      .map(routeName)
      .filter((name) => !(name in KEYED_ROUTE_FIXTURES))
    expect(missing, 'add these to test/support/route-fixtures.ts').toEqual([])
  })

  it('has no fixture for a route that is not there', () => {
    const served = new Set(routes.map(routeName))
    const stale = [
      ...Object.keys(KEYED_ROUTE_FIXTURES),
      ...Object.keys(READ_ROUTE_FIXTURES),
    ].filter((name) => !served.has(name))
    expect(stale).toEqual([])
  })
})

describe('every POST and DELETE route', () => {
  // A route without a fixture fails 'has a fixture for every POST and DELETE route' above.
  const keyedRoutes = () =>
    routes.filter(
      (route) => KEYED_METHODS.has(route.method) && routeName(route) in KEYED_ROUTE_FIXTURES,
    )
  const fixtureOf = (route: RegisteredRoute) => {
    const fixture = KEYED_ROUTE_FIXTURES[routeName(route)]
    if (fixture === undefined) throw new Error(`no fixture for ${routeName(route)}`)
    return fixture(context)
  }

  it('replays the stored answer to a repeated request with the same key, and runs once', async () => {
    expect(keyedRoutes().length).toBeGreaterThan(0)
    for (const route of keyedRoutes()) {
      const { request, status } = await fixtureOf(route)
      const key = newKey()
      const claims = server.claims()
      const first = await sendTo(request, route.method, key)
      const second = await sendTo(request, route.method, key)

      expect(first.status, `${routeName(route)}: ${first.text}`).toBe(status)
      expect(first.headers.has('idempotent-replayed'), routeName(route)).toBe(false)
      expect(second.status, routeName(route)).toBe(status)
      expect(second.headers.get('idempotent-replayed'), routeName(route)).toBe('true')
      expect(second.headers.get('original-request'), routeName(route)).toBe(
        first.headers.get('x-request-id'),
      )
      expect(second.text, routeName(route)).toBe(first.text)
      expect(server.claims() - claims, routeName(route)).toBe(1)
    }
  })

  it('refuses a malformed key with 400 before anything runs', async () => {
    for (const route of keyedRoutes()) {
      const { request } = await fixtureOf(route)
      const claims = server.claims()
      const stored = await records()
      const answer = await sendTo(request, route.method, 'not-a-uuid')

      expect(answer.status, routeName(route)).toBe(400)
      expect(errorOf(answer), routeName(route)).toEqual({
        code: 'invalid_argument',
        message: 'Invalid idempotency key format',
      })
      expect(server.claims(), routeName(route)).toBe(claims)
      expect(await records(), routeName(route)).toBe(stored)
    }
  })

  it('refuses the key reused for another path or body with the mismatch 409', async () => {
    for (const route of keyedRoutes()) {
      const { request, status, different } = await fixtureOf(route)
      const key = newKey()
      const claims = server.claims()
      expect((await sendTo(request, route.method, key)).status, routeName(route)).toBe(status)
      const reused = await sendTo(different, route.method, key)

      expect(reused.status, routeName(route)).toBe(409)
      expect(errorOf(reused), routeName(route)).toEqual({
        code: 'already_exists',
        message: 'Idempotency key reused with different request parameters',
      })
      expect(server.claims() - claims, routeName(route)).toBe(1)
    }
  })
})

describe('every GET and PUT route', () => {
  it('ignores Idempotency-Key, even a malformed one, and stores nothing', async () => {
    const ignoring = routes.filter((route) => route.method === 'GET' || route.method === 'PUT')
    expect(ignoring.length).toBeGreaterThan(0)
    for (const route of ignoring) {
      const fixture = READ_ROUTE_FIXTURES[routeName(route)]
      const request = fixture === undefined ? placeholderRequest(route) : await fixture(context)
      const claims = server.claims()
      const stored = await records()
      const answer = await sendTo(request, route.method, 'not-a-uuid')

      const what = `${routeName(route)}: ${answer.text.slice(0, 200)}`
      if (request.status === undefined) {
        // A placeholder id: any answer but a server error or the key-format 400.
        expect(answer.status, what).toBeLessThan(500)
        if (answer.status === 400) expect(errorOf(answer).message, what).not.toMatch(/idempotency/i)
      } else {
        expect(answer.status, what).toBe(request.status)
      }
      expect(server.claims(), routeName(route)).toBe(claims)
      expect(await records(), routeName(route)).toBe(stored)
      expect(answer.headers.has('idempotent-replayed'), routeName(route)).toBe(false)
    }
  })
})

/**
 * A route without a fixture: as it is when it has no parameters (a GET then answers 200),
 * else with a placeholder for each, and no telling what it answers.
 */
function placeholderRequest(route: RegisteredRoute): RouteRequest & { status?: number } {
  const path = route.url.replace(/:[A-Za-z_]+/g, 'placeholder').replace('*', 'placeholder')
  return path === route.url && route.method === 'GET' ? { path, status: 200 } : { path }
}
