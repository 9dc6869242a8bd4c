import type { FastifyInstance } from 'fastify'
import type { RateLimitStore } from '../domain/rate-limit-store.js'
import { JSON_TYPE, renderError } from './envelope.js'
import type { RequestGuard } from './error-handler.js'

const SUFFIX = { minute: 'Minute', hour: 'Hour' } as const

/**
 * Per-account rate limits on every authenticated request. Register it right after
 * authentication and before the idempotency plugin: a 401 never reaches it (and so costs
 * nothing), and its 429 answers before the idempotency key is even parsed, so a client that
 * waits out a 429 may retry with the same key.
 *
 * Every authenticated response carries the limit and the remaining tokens of both windows;
 * a window with no token left also carries `X-RateLimit-Reset-*`, the Unix second at which it
 * holds one again.
 */
export function registerRateLimit(
  app: FastifyInstance,
  store: RateLimitStore,
  now: () => number = Date.now,
): RequestGuard {
  const charge: RequestGuard = async (request, reply) => {
    const account = request.account
    if (account === null) return false
    const decision = await store.take(account.id, now())
    for (const window of decision.windows) {
      const suffix = SUFFIX[window.name]
      reply.header(`X-RateLimit-Limit-${suffix}`, String(window.limit))
      reply.header(`X-RateLimit-Remaining-${suffix}`, String(window.remaining))
      if (window.resetAtMs !== undefined) {
        reply.header(`X-RateLimit-Reset-${suffix}`, String(Math.ceil(window.resetAtMs / 1000)))
      }
    }
    if (decision.allowed) return false
    // Rounded up: a client that waits exactly this long finds a token.
    const seconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000))
    void reply
      .code(429)
      .header('Retry-After', String(seconds))
      .type(JSON_TYPE)
      .send(
        renderError('rate_limited', `Rate limit exceeded. Retry after ${String(seconds)} seconds.`),
      )
    return true
  }
  app.addHook('onRequest', async (request, reply) =>
    (await charge(request, reply)) ? reply : undefined,
  )
  return charge
}
