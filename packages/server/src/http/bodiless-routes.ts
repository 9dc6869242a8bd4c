import type { FastifyInstance, FastifyRequest, preValidationHookHandler } from 'fastify'
import { ApiError } from '../domain/api-error.js'

/**
 * A `POST` or `DELETE` that takes no body (`/pause`, `/resume`, `/cancel`, `/publish`, every
 * `DELETE`) refuses one with content, as a route with a body refuses an unknown field (decision
 * 0005): `{"force":true}` sent to a delete is an option the API does not have, and silently
 * dropping it would let the client believe it was honoured. No body, an empty one, and `{}`
 * (what many clients send by default) pass. Checked in `preValidation`, before the idempotency
 * key is claimed, so a client that drops the body may retry with the same key.
 *
 * Register it before the routes: it attaches itself to each bodiless route as it is declared.
 */
export function refuseBodiesWhereNoneBelongs(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const methods = [route.method].flat()
    if (!methods.includes('POST') && !methods.includes('DELETE')) return
    if (route.schema?.body !== undefined || route.schema?.documentedBody !== undefined) return
    const existing = route.preValidation === undefined ? [] : [route.preValidation].flat()
    route.preValidation = [...existing, refuseBody]
  })
}

const refuseBody: preValidationHookHandler = (request, _reply, done) => {
  done(
    isNoBody(request)
      ? undefined
      : new ApiError('invalid_argument', 'This call takes no body: send none, or {}'),
  )
}

function isNoBody({ body }: FastifyRequest): boolean {
  if (body === undefined) return true
  return (
    typeof body === 'object' &&
    body !== null &&
    !Array.isArray(body) &&
    Object.keys(body).length === 0
  )
}
