/**
 * Authentication and the rate limit are decided on the route a request reaches, never on how
 * its path was spelled: raw requests over TCP with percent-encoding, absolute-form targets,
 * double slashes, dot segments, letter case and trailing junk.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiError } from '../src/domain/api-error.js'
import { accountOf } from '../src/http/auth.js'
import type { RawAnswer, TestServer } from './support/server.js'
import { ACME_KEY, GLOBEX_KEY, datastreamIds, newKey, startServer } from './support/server.js'
import { expectRawEnvelope, sendTarget } from './support/raw-http.js'

/** The routes anyone may call; every other route needs an API key. */
const PUBLIC = (url: string) =>
  url === '/openapi.json' ||
  url === '/healthz' ||
  url === '/readyz' ||
  url === '/metrics' ||
  url === '/downloads/:artifactId' ||
  url === '/docs' ||
  url.startsWith('/docs/')

/** A concrete path for a declared route URL: every parameter and wildcard filled in. */
const concrete = (url: string) => url.replace(/:[A-Za-z]+/g, 'x1').replace(/\*/g, 'x')

/**
 * The ways of writing one `/v1/...` path that a router might take for it, or might not: each
 * one must either reach the route (and then pass authentication like the plain path) or be an
 * unknown route.
 */
function spellingsOf(path: string, host: string): string[] {
  const rest = path.slice('/v1'.length)
  const [, first = '', ...others] = rest.split('/')
  const encodedFirst =
    first === ''
      ? rest
      : `/%${first.charCodeAt(0).toString(16)}${first.slice(1)}${others.map((part) => `/${part}`).join('')}`
  return [
    path,
    `/%76%31${rest}`,
    `/%761${rest}`,
    `/v%31${rest}`,
    `/%56%31${rest}`,
    `/v1${encodedFirst}`,
    `/%76%31${encodedFirst}`,
    `http://x${path}`,
    `http://${host}${path}`,
    `https://x${path}`,
    `http://x/%76%31${rest}`,
    `//v1${rest}`,
    `/v1/${rest}`,
    `///v1${rest}`,
    `/x/..${path}`,
    `/x/%2e%2e${path}`,
    `/.${path}`,
    `/%2e${path}`,
    `/v1/.${rest}`,
    `/V1${rest}`,
    `/v1${rest.toUpperCase()}`,
    `${path}/`,
    `${path};x`,
    `${path}?`,
    `${path}?x=1`,
    `${path}#x`,
    `${path}%20`,
    `${path}.json`,
  ]
}

const expectNotThrough = (answer: RawAnswer, target: string) => {
  expect([401, 404], `${target}: ${String(answer.status)} ${answer.text}`).toContain(answer.status)
  expectRawEnvelope(answer, answer.status, answer.status === 401 ? 'unauthenticated' : 'not_found')
}

describe('authentication by route', () => {
  let server: TestServer
  const nextDatastream = datastreamIds()

  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(async () => {
    await server.close()
  })

  const routes = () =>
    server.app.routes.filter((route) => route.method !== 'HEAD' && !PUBLIC(route.url))

  it('knows the routes it checks: the API routes are all there', () => {
    const names = routes().map((route) => `${route.method} ${route.url}`)
    expect(names).toEqual(
      expect.arrayContaining([
        'GET /v1/exchanges',
        'GET /v1/datastreams',
        'GET /v1/billing/summary',
        'POST /v1/subscriptions',
        'GET /v1/exports/:id/download',
      ]),
    )
    expect(names.every((name) => name.split(' ')[1]?.startsWith('/v1'))).toBe(true)
  })

  it('answers every spelling of every non-public route without an API key with 401 or 404', async () => {
    const host = new URL(server.url).host
    let checked = 0
    for (const route of routes()) {
      for (const target of spellingsOf(concrete(route.url), host)) {
        const answer = await sendTarget(server.url, route.method, target, {
          ...(route.method === 'POST' ? { body: '{}' } : {}),
        })
        expectNotThrough(answer, `${route.method} ${target}`)
        checked++
      }
    }
    expect(checked).toBeGreaterThan(500)
  })

  it('answers the audit’s own bypasses with 401, on the catalog and on account routes', async () => {
    for (const target of [
      '/%76%31/exchanges',
      '/v%31/datastreams',
      'http://x/v1/exchanges',
      '/%76%31/billing/summary',
      '/%76%31/subscriptions',
    ]) {
      expectRawEnvelope(await sendTarget(server.url, 'GET', target), 401, 'unauthenticated')
    }
    const post = await sendTarget(server.url, 'POST', '/%761/subscriptions', {
      extraLines: [`Idempotency-Key: ${newKey()}`],
      body: JSON.stringify({ datastream_id: nextDatastream() }),
    })
    expectRawEnvelope(post, 401, 'unauthenticated')
  })

  it('answers an unknown route without an API key with 401: nothing is public by omission', async () => {
    for (const target of ['/nope', '/', '/v1/nope', '/v2/exchanges', '/%76%31/nope']) {
      expectRawEnvelope(await sendTarget(server.url, 'GET', target), 401, 'unauthenticated')
    }
  })

  // Paths that do not decode are routed with their percent signs taken literally: an unknown
  // route or a route with a malformed id, authenticated and rate limited like /nope.
  const UNDECODABLE = ['/%zz', '/v1/subscriptions/%ZZ', '/v1/exchanges/%ff/instruments']

  it('answers a download link whose id does not decode as any bad link, key or not', async () => {
    for (const apiKey of [undefined, ACME_KEY]) {
      const answer = await sendTarget(server.url, 'GET', '/downloads/%zz?expires=1&sig=x', {
        ...(apiKey === undefined ? {} : { apiKey }),
      })
      expectRawEnvelope(answer, 403, 'permission_denied')
    }
  })

  it('answers a path it cannot decode without an API key with 401, as any unknown route', async () => {
    for (const target of UNDECODABLE) {
      for (const method of ['GET', 'POST', 'DELETE']) {
        expectRawEnvelope(await sendTarget(server.url, method, target), 401, 'unauthenticated')
      }
    }
  })

  it('answers a path it cannot decode with an API key with 404, the rate-limit headers and no-store', async () => {
    for (const target of UNDECODABLE) {
      const answer = await sendTarget(server.url, 'GET', target, { apiKey: ACME_KEY })
      expectRawEnvelope(answer, 404, 'not_found')
      expect(answer.headers['x-ratelimit-remaining-minute'], target).toMatch(/^\d+$/)
      expect(answer.headers['cache-control'], target).toBe('no-store')
      expect(answer.headers['x-content-type-options'], target).toBe('nosniff')
    }
  })

  it('serves the public routes without an API key', async () => {
    expect((await sendTarget(server.url, 'GET', '/openapi.json')).status).toBe(200)
    expect((await sendTarget(server.url, 'GET', '/metrics')).status).toBe(200)
    expect((await sendTarget(server.url, 'GET', '/healthz')).status).toBe(200)
    expect((await sendTarget(server.url, 'GET', '/readyz')).status).toBe(200)
    expect((await sendTarget(server.url, 'GET', '/docs/static/index.css')).status).toBe(200)
    const download = await sendTarget(server.url, 'GET', '/downloads/art_x?expires=1&sig=x')
    expectRawEnvelope(download, 403, 'permission_denied')
  })

  it("answers the documentation's refusal of a path that climbs out of its folder as a 403, not a 400", async () => {
    const climbing = await sendTarget(server.url, 'GET', '/docs/static/../../v1/billing/summary')
    expectRawEnvelope(climbing, 403, 'permission_denied')
  })

  it('serves an account route reached by another spelling with the key as the plain path does', async () => {
    for (const target of ['/%76%31/billing/summary', 'http://x/v1/billing/summary']) {
      const answer = await sendTarget(server.url, 'GET', target, { apiKey: ACME_KEY })
      expect(answer.status, answer.text).toBe(200)
      expect(answer.headers['x-ratelimit-remaining-minute']).toMatch(/^\d+$/)
    }
    const datastream = nextDatastream()
    const post = await sendTarget(server.url, 'POST', '/%761/subscriptions', {
      apiKey: ACME_KEY,
      extraLines: [`Idempotency-Key: ${newKey()}`],
      body: JSON.stringify({ datastream_id: datastream }),
    })
    expect(post.status, post.text).toBe(201)
    const mine = await sendTarget(server.url, 'GET', '/v1/subscriptions?limit=100', {
      apiKey: ACME_KEY,
    })
    const theirs = await sendTarget(server.url, 'GET', '/v1/subscriptions?limit=100', {
      apiKey: GLOBEX_KEY,
    })
    const count = (answer: RawAnswer) =>
      (JSON.parse(answer.text) as { items: { datastream_id: number }[] }).items.filter(
        (item) => item.datastream_id === datastream,
      ).length
    expect(count(mine)).toBe(1)
    expect(count(theirs)).toBe(0)
  })
})

describe('the rate limit by route', () => {
  let server: TestServer
  const LIMIT = 3

  beforeAll(async () => {
    server = await startServer({
      RATE_LIMIT_PER_MINUTE: String(LIMIT),
      RATE_LIMIT_PER_HOUR: '1000',
    })
  })
  afterAll(async () => {
    await server.close()
  })

  it('applies to every spelling that reaches a route: once the bucket is empty, each is a 429', async () => {
    for (let i = 0; i < LIMIT; i++) {
      const answer = await sendTarget(server.url, 'GET', '/v1/exchanges', { apiKey: ACME_KEY })
      expect(answer.status).toBe(200)
    }
    const host = new URL(server.url).host
    let limited = 0
    for (const path of ['/v1/exchanges', '/v1/datastreams', '/v1/billing/summary']) {
      for (const target of spellingsOf(path, host)) {
        const answer = await sendTarget(server.url, 'GET', target, { apiKey: ACME_KEY })
        expect([404, 429], `${target}: ${String(answer.status)} ${answer.text}`).toContain(
          answer.status,
        )
        if (answer.status === 429) {
          expectRawEnvelope(answer, 429, 'rate_limited')
          limited++
        }
      }
    }
    // The plain path and the encoded and absolute-form spellings at least.
    expect(limited).toBeGreaterThanOrEqual(3 * 5)
  })

  it('charges a path it cannot decode like any request: the bucket empties, then it is a 429', async () => {
    const remaining: string[] = []
    for (let i = 0; i < LIMIT; i++) {
      const answer = await sendTarget(server.url, 'GET', '/v1/subscriptions/%zz', {
        apiKey: GLOBEX_KEY,
      })
      expect(answer.status).toBe(404)
      remaining.push(answer.headers['x-ratelimit-remaining-minute'] ?? '')
    }
    expect(remaining).toEqual(['2', '1', '0'])
    const plain = await sendTarget(server.url, 'GET', '/v1/exchanges', { apiKey: GLOBEX_KEY })
    expectRawEnvelope(plain, 429, 'rate_limited')
    const undecodable = await sendTarget(server.url, 'GET', '/%zz', { apiKey: GLOBEX_KEY })
    expectRawEnvelope(undecodable, 429, 'rate_limited')
    expect(undecodable.headers['retry-after']).toMatch(/^\d+$/)
  })
})

describe('accountOf', () => {
  it('is a 401 for a request without an account, never an internal error', () => {
    let thrown: unknown
    try {
      accountOf({ account: null })
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(ApiError)
    expect((thrown as ApiError).status).toBe(401)
    expect((thrown as ApiError).code).toBe('unauthenticated')
  })
})
