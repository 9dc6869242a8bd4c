import type { FastifyInstance } from 'fastify'
import { JSON_TYPE, renderError } from './envelope.js'

/** Methods whose answers are the operation's, and stored under an idempotency key. */
const KEYED_METHODS = new Set(['POST', 'DELETE'])

/**
 * Text with a NUL character (U+0000) never reaches the database: PostgreSQL cannot store NUL in
 * text at all (the statement fails, which was a 500 there), and SQLite stores it where C
 * functions then stop short. No field of this API has a use for it, so, before validation and
 * before the idempotency claim (nothing runs, the key stays usable):
 *
 * - in a query value, or any string or key of a JSON body: `400 invalid_argument`;
 * - in a path parameter (`%00`) of a read: `404 not_found`, since nothing stored can have such a
 *   name (the same answer as any other unknown id). On POST and DELETE the route answers its own
 *   404 for the malformed id inside the claim, where the contract stores it.
 */
export function registerTextValueCheck(app: FastifyInstance): void {
  app.addHook('preValidation', (request, reply, done) => {
    const part = hasNul(request.query) ? 'query' : hasNul(request.body) ? 'body' : undefined
    if (part !== undefined) {
      void reply
        .code(400)
        .type(JSON_TYPE)
        .send(renderError('invalid_argument', `The request ${part} contains a NUL character`))
      return
    }
    if (!KEYED_METHODS.has(request.method) && hasNul(request.params)) {
      void reply
        .code(404)
        .type(JSON_TYPE)
        .send(renderError('not_found', 'Not found: a path parameter contains a NUL character'))
      return
    }
    done()
  })
}

/** Whether any string (or object key) in `value` holds U+0000; iterative, for deep JSON. */
function hasNul(value: unknown): boolean {
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const next = pending.pop()
    if (typeof next === 'string') {
      if (next.includes('\u0000')) return true
    } else if (Array.isArray(next)) {
      for (const item of next as unknown[]) pending.push(item)
    } else if (typeof next === 'object' && next !== null) {
      for (const [key, item] of Object.entries(next)) {
        if (key.includes('\u0000')) return true
        pending.push(item)
      }
    }
  }
  return false
}
