import type { FastifyInstance } from 'fastify'

/**
 * Headers on every answer, whoever writes it: no browser may guess a type other than the one
 * declared (an error envelope or an export file rendered as HTML would be a way in).
 */
export const ALWAYS_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
}

/**
 * The first hook of every request: its id and {@link ALWAYS_HEADERS}, set before anything can
 * answer, so that errors, 401s and 404s carry them too. Answers written outside Fastify's
 * request cycle (framework errors, client errors) add the same headers themselves.
 */
export function registerResponseHeaders(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id).headers(ALWAYS_HEADERS)
  })
}
