import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Database } from '../db/database.js'
import type { Account } from '../domain/accounts.js'
import { authenticate } from '../domain/accounts.js'
import { ApiError } from '../domain/api-error.js'
import { JSON_TYPE, renderError } from './envelope.js'
import type { RequestGuard } from './error-handler.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated account; set on every request to a route that is not public. */
    account: Account | null
  }
}

/**
 * The routes anyone may call, by the URL they were declared with: the API description and its
 * UI, the health checks and metrics, and the signed download links (the link is the
 * credential).
 */
const PUBLIC_ROUTES: ReadonlySet<string> = new Set([
  '/openapi.json',
  '/healthz',
  '/readyz',
  '/metrics',
  '/downloads/:artifactId',
])
/** Swagger UI registers its page and assets under this prefix. */
const PUBLIC_PREFIX = '/docs'

/**
 * Whether a request may go without an API key. Decided on the route the router matched, never on
 * the request's text: the router decodes percent-encoding and strips an absolute-form origin,
 * so `/%76%31/exchanges` and `http://x/v1/exchanges` reach the `/v1/exchanges` handler. A
 * request that matched no route has no declared URL and needs a key too: nothing is public by
 * omission.
 */
export function isPublicRoute(request: FastifyRequest): boolean {
  const url = request.routeOptions.url
  if (url === undefined) return false
  return PUBLIC_ROUTES.has(url) || url === PUBLIC_PREFIX || url.startsWith(`${PUBLIC_PREFIX}/`)
}

/**
 * `X-Api-Key` on every request that is not to a public route; a missing, unknown or revoked key
 * is a 401. Their answers are about an account, 401s included, so no cache may keep them.
 */
export function registerAuth(app: FastifyInstance, db: Database): RequestGuard {
  app.decorateRequest('account', null)
  const requireAccount: RequestGuard = async (request, reply) => {
    reply.header('cache-control', 'no-store')
    const header = request.headers['x-api-key']
    const account =
      typeof header === 'string' && header !== '' ? await authenticate(db, header) : undefined
    if (account === undefined) {
      void reply
        .code(401)
        .type(JSON_TYPE)
        .send(renderError('unauthenticated', 'Invalid or missing API key'))
      return true
    }
    request.account = account
    return false
  }
  app.addHook('onRequest', async (request, reply) => {
    if (isPublicRoute(request) || !(await requireAccount(request, reply))) return undefined
    return reply
  })
  return requireAccount
}

/**
 * The account of a request that passed {@link registerAuth}. A handler that asks for it on a
 * request without one (a public route by mistake) answers 401, not an internal error.
 */
export function accountOf(request: { account: Account | null }): Account {
  if (request.account === null) throw new ApiError('unauthenticated', 'Invalid or missing API key')
  return request.account
}
