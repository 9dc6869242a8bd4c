import type { FastifyInstance } from 'fastify'
import { ApiError } from '../domain/api-error.js'

/**
 * JSON bodies: an empty body is no body (a POST such as `/pause` may carry the header without
 * one), and a malformed one is the envelope's `invalid_argument`, never a 500.
 */
export function registerJsonBody(app: FastifyInstance, bodyLimit: number): void {
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit },
    (_request, body, done) => {
      const text = typeof body === 'string' ? body : body.toString('utf8')
      if (text.trim() === '') {
        done(null, undefined)
        return
      }
      try {
        done(null, JSON.parse(text) as unknown)
      } catch {
        done(new ApiError('invalid_argument', 'Malformed JSON body'), undefined)
      }
    },
  )
}
